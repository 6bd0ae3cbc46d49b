"""The prompt-injection rules: regular expressions over the normalised views, with weights.

A rule is ``(name, category, weight, view kind, pattern)``; :mod:`.injection` explains weights and
categories. The tables are data and are laid out by hand (``fmt: off``): one rule, one entry.
"""

from __future__ import annotations

import re

__all__ = ["MEDIUM", "RULES", "STRONG", "WEAK", "Rule"]

STRONG, MEDIUM, WEAK = 1.0, 0.6, 0.4

# fmt: off
# ---- vocabulary (the ``words`` view: lower case, no accents, words separated by one space)
_IGNORE = (
    r"(?:ignore|ignoring|ignores|disregard|disregarding|forget|forgetting|neglect|skip|bypass"
    r"|override|overrides|overwrite|overriding|abandon|discard|drop|set aside|throw away|erase"
    r"|stop following|do not follow|dont follow|do not obey|dont obey|do not apply|dont apply"
    r"|stop applying|cancel|void|delete|remove|circumvent|get around|scrap)"
)
_TARGET = (
    r"(?:instructions?|directions?|directives?|rules?|guidelines?|guidance|prompts?|system prompt"
    r"|system message|programming|polic(?:y|ies)|constraints|restrictions|guardrails?|commands"
    r"|context|training|limitations|filters?|safeguards|protocols?|criteria|task|orders"
    r"|content polic(?:y|ies)|settings)"
)
_PRIOR = (
    r"(?:previous|prior|preceding|earlier|above|foregoing|initial|original|former|existing|old"
    r"|current|given|system|developer|developers|operator|operators|hidden|default|safety|content"
    r"|ethical|moral|standing|preset|underlying|base|core|built in)"
)
_NOT_MINE = r"(?!(?:my|our|his|her|mine) )"
_DET = r"(?:the |your |their |its |these |those |any |all |all of |all the |all your |every )?"
_AI = (
    r"(?:ai|ais|llm|llms|language models?|chatbots?|assistants?|bots?|agents?|models?|gpt"
    r"|summari[sz]ers?|automated systems?|ai assistants?|ai agents?|ai models?)"
)
_FREE = (
    r"(?:restrictions|limitations|limits|filters?|rules|guidelines|censorship"
    r"|content polic(?:y|ies)|policies|guardrails?"
    r"|safety (?:training|guidelines|rules|filters|measures|features)"
    r"|(?:ethical|moral) (?:guidelines|constraints|limits|boundaries|principles|rules)"
    r"|constraints|refusals|boundaries|safeguards|moderation)"
)
_BAD_ADJ = (
    r"(?:unrestricted|unfiltered|uncensored|unlimited|unbound|unchained|jailbroken|evil|malicious"
    r"|amoral|unethical|rogue|lawless)"
)
_PROMPT_NOUN = (
    r"(?:system prompt|systemprompt|system message|system instructions?"
    r"|initial (?:prompt|instructions)|original (?:prompt|instructions)"
    r"|hidden (?:prompt|instructions|rules|text|parts|message)"
    r"|secret (?:prompt|instructions|rules)|developer (?:message|prompt|instructions)"
    r"|pre ?prompt|meta ?prompt|(?:full|entire|complete|whole|exact|initial|first) prompt"
    r"|(?:prompt|instructions) you (?:were|have been) given|instructions you (?:received|got)"
    r"|instructions in your context|(?:everything|text) in your context window"
    r"|configuration and (?:the )?instructions|rules you (?:must|have to) follow)"
)
_REQUEST = (
    r"(?:what is|whats|what are|what were|show|print|reveal|tell me|output|display|repeat|leak"
    r"|dump|share|give me|echo|spell out|write out|summari[sz]e|translate|list|disclose|return"
    r"|provide|quote|recite|paste|type out|copy|expose|read back|send me)"
)
_STRONG_REQUEST = (
    r"(?:print|reveal|output|repeat|leak|dump|echo|spell out|write out|disclose|recite|quote"
    r"|translate|paste|type out|expose|read back)"
)

Rule = tuple[str, str, float, str, "re.Pattern[str]"]  # name, category, weight, view kind, regex


def _w(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _m(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.MULTILINE)


_WORD_RULES: list[tuple[str, str, float, re.Pattern[str]]] = [
    # -- instruction override
    ("override_prior", "instruction_override", STRONG, _w(
        rf"\b{_IGNORE} (?:all |any |every |each )?(?:of )?{_NOT_MINE}{_DET}"
        rf"(?:{_PRIOR} ){{1,2}}(?:\w+ )?{_TARGET}\b"
        rf"|\b{_IGNORE} (?:all |any )?(?:of )?{_NOT_MINE}{_DET}(?:\w+ )?{_TARGET} (?:above"
        rf"|before"
        r" (?:this|now)|so far|given (?:above|earlier|before)|you (?:were|have been) given)\b")),
    ("override_yours", "instruction_override", STRONG, _w(
        rf"\b{_IGNORE} (?:all |any |each )?(?:of )?(?:your|their|its) (?:\w+ ){{0,2}}"
        rf"{_TARGET}\b")),
    ("override_given", "instruction_override", STRONG, _w(
        rf"\b{_IGNORE} (?:all |any )?(?:of )?{_NOT_MINE}{_DET}{_TARGET} (?:you (?:were"
        r"|have been|got|received|are given)|(?:given|provided) (?:to you|by)"
        r"|from (?:the )?(?:system|developers?"
        r"|operators?|openai|anthropic))")),
    ("override_above", "instruction_override", STRONG, _w(
        rf"\b{_IGNORE} (?:all of |all |everything |anything |every ?thing )?(?:that |what )?"
        r"(?:(?:was|is|you were|you have been|youve been) )?(?:(?:said|written|stated|told"
        r"|given"
        r"|mentioned) )?(?:the )?(?:above|before (?:this|that|now|my)|previously|so far"
        r"|prior to this|earlier)(?! (?:error|warning|message from|email|mail|noise|issue|typo"
        r"|problem|comment|step|paragraph|picture|image|photo|figure|table|link))")),
    ("override_told", "instruction_override", STRONG, _w(
        r"\b(?:forget|ignore|disregard) (?:everything|all|anything|whatever|what) (?:that )?"
        r"(?:you (?:were|have been|ve been|are) (?:told|taught|trained|instructed|programmed)"
        r"|the (?:system|developers?|operators?|admin) (?:said|says|told you|wrote))")),
    ("override_generic", "instruction_override", MEDIUM, _w(
        rf"\b{_IGNORE} (?:all |any )?(?:of )?{_NOT_MINE}{_DET}(?:(?!my |our )\w+ ){{0,2}}"
        rf"{_TARGET}\b")),
    ("override_role", "instruction_override", WEAK, _w(
        rf"\b{_IGNORE} (?:\w+ ){{0,3}}(?:role|persona|character|assignment|identity)\b")),
    ("override_user", "instruction_override", MEDIUM, _w(
        rf"\b{_IGNORE} (?:the |this )?users? (?:question|request|message|query|input|prompt)")),
    ("instructions_void", "instruction_override", MEDIUM, _w(
        r"\b(?:previous|prior|earlier|above|original|old|former|other|real|those)"
        r" (?:instructions"
        r"|rules|directions|prompts?|directives) (?:were|are|was|is|have been|has been) (?:\w+"
        r" )?"
        r"(?:a mistake|wrong|fake|outdated|void|revoked|cancell?ed|invalid|a test|obsolete"
        r"|no longer valid|null|overridden|replaced|superseded)")),
    ("new_instructions_are", "instruction_override", MEDIUM, _w(
        r"\byour (?:real|true|actual|new|updated|only|revised) (?:instructions|rules|task"
        r"|directives?|orders|goal|purpose|objective)s? (?:are|is|follow|will be)\b")),
    ("new_task", "instruction_override", WEAK, _w(
        r"\b(?:new|updated|revised|real|actual) (?:task|instructions?|rules|directives?|goal"
        r"|policy) (?:\. |is |are |follow)")),
    # -- role hijack and jailbreak personas
    ("dan", "role_hijack", STRONG, _w(
        r"\bdo anything now\b|\byou are (?:now )?(?:dan|stan|aim|dude|evilbot|freegpt)\b"
        r"|\b(?:act|respond|answer|behave|reply) as (?:dan|stan|aim)\b"
        r"|\bdan (?:mode|can do|has no)")),
    ("jailbreak_mode", "role_hijack", STRONG, _w(
        r"\b(?:enter|enable|activate|switch to|switch into|turn on|go into|you are in|youre in"
        r"|you are now in|now in|with) (?:\w+ )?(?:jailbreak|jailbroken|god|sudo|unrestricted"
        r"|unfiltered|uncensored|dan|evil|no ?rules|chaos|opposite) mode\b")),
    ("bad_persona", "role_hijack", STRONG, _w(
        rf"\b{_BAD_ADJ} (?:\w+ )?(?:ai|assistant|model|chatbot|bot|version|gpt|llm|persona|twin"
        rf" ai"
        r"|mode|self)\b|\bjailbroken (?:model|ai|assistant|chatbot|llm|version|you)\b")),
    ("you_are_now_bad", "role_hijack", STRONG, _w(
        rf"\byou are (?:now |from now on )(?:an? |my |the )?(?:\w+ ){{0,2}}"
        rf"(?:{_BAD_ADJ}|no longer bound|evil|dan)\b")),
    ("no_longer", "role_hijack", STRONG, _w(
        r"\byou are no longer (?:an? |the |my )?(?:\w+ ){0,2}(?:assistant|ai|bot|chatbot|bound"
        r"|restricted|limited|chatgpt|claude|model|helper)\b")),
    ("persona_ai", "role_hijack", MEDIUM, _w(
        r"\b(?:you are now|you are now going to|youre now|you will now|from now on you are"
        r"|pretend"
        r"|imagine|act|behave|roleplay|role play|simulate|play the role of|respond|answer)"
        r" (?:that )?(?:you are |youre |to be |as (?:if )?(?:you (?:are|were) )?|like )?"
        rf"(?:an? |my |the )?(?:\w+ ){{0,3}}{_AI}\b(?! assistant can)")),
    ("you_are_now_acting", "role_hijack", MEDIUM, _w(
        r"\byou are now (?:acting|playing|operating|functioning|working|speaking) as\b")),
    ("from_now_on", "role_hijack", MEDIUM, _w(
        r"\b(?:from now on|from this point (?:on|forward)|starting now|henceforth|for the rest"
        r" of"
        r" (?:this|the) (?:chat|conversation|session)) (?:\. )?you\b")),
    ("pretend_unbound", "role_hijack", MEDIUM, _w(
        r"\b(?:pretend|imagine|suppose|hypothetically|act as if|as if) (?:\w+ ){0,3}you (?:have"
        r"|had|are|were|re|have been) (?:\w+ ){0,2}(?:no|not bound|free|freed|unrestricted"
        r"|without|released)\b")),
    ("grandma", "role_hijack", MEDIUM, _w(
        r"\b(?:pretend|act|roleplay|role play|play) (?:\w+ ){0,3}(?:my )?(?:late|deceased|dead)"
        r" (?:grandmother|grandma|grandfather|grandpa|mother|father)")),
    ("play_a_game", "role_hijack", WEAK, _w(
        r"\b(?:lets play a game|new game|play a game)\b(?: \w+){0,4} you are\b")),
    ("new_name", "role_hijack", WEAK, _w(
        r"\byour (?:new )?name is now\b|\byour new name is\b|\byour (?:true|real|inner"
        r"|unfiltered"
        r"|original) self\b")),
    ("developer_mode", "role_hijack", WEAK, _w(
        r"\bdeveloper mode\b")),
    ("in_developer_mode", "role_hijack", STRONG, _w(
        r"\b(?:you are|youre|you re) (?:now )?(?:in|running in|operating in) developer mode\b")),
    ("no_restrictions", "safety_bypass", MEDIUM, _w(
        rf"\b(?:no|without|zero|free of|free from|freed from|broken free of|not bound by"
        rf"|unbound by|released from|liberated from|never(?: \w+){{0,2}}|does not have|doesnt"
        rf" have"
        rf"|lifted all|remove all|removed all) (?:any |all |your |its |the )?(?:\w+ ){{0,3}}?"
        rf"{_FREE}\b")),
    ("no_rules_follow", "safety_bypass", MEDIUM, _w(
        r"\b(?:does not|doesnt|do not|dont|never|wont|will not|cannot|cant) (?:follow|obey"
        r"|abide by"
        r"|adhere to|care about|respect) (?:any )?(?:\w+ )?(?:rules|restrictions|guidelines"
        r"|policies|content policy|filters|limits|norms)")),
    # -- safety bypass
    ("disable_safety", "safety_bypass", STRONG, _w(
        r"\b(?:disable|turn off|deactivate|remove|bypass|ignore|lift|drop|switch off|circumvent"
        r"|get around|suspend|shut off|skip) (?:all |any )?(?:of )?(?:your|its) (?:\w+ ){0,2}"
        r"(?:filters?|guardrails?|safeguards|moderation|censorship|restrictions|limitations"
        r"|guidelines|protections|safety|content polic(?:y|ies)|ethics|alignment)\b")),
    ("disable_filter", "safety_bypass", MEDIUM, _w(
        r"\b(?:disable|turn off|deactivate|remove|bypass|lift|switch off|circumvent|suspend"
        r"|shut off) (?:all |any )?(?:of )?(?:the |all )?(?:\w+ ){0,2}(?:filters?|guardrails?"
        r"|safeguards|moderation|censorship|restrictions|limitations|safety)\b")),
    ("respond_without", "safety_bypass", STRONG, _w(
        rf"\b(?:answer|respond|reply|write|speak|talk|continue|comply) (?:\w+ ){{0,2}}without"
        rf" (?:any )?(?:\w+ ){{0,3}}?(?:{_FREE}|warnings|refusing|refusal|censoring)\b")),
    ("safety_off", "safety_bypass", MEDIUM, _w(
        r"\b(?:safety|content|ethical|security|moral)? ?(?:guidelines|filters?|rules"
        r"|restrictions"
        r"|polic(?:y|ies)|checks?|training|limitations|guardrails?|protocols?) (?:(?:are|have"
        r" been"
        r"|has been|were|was|got|is) )?(?:now )?(?:\w+ )?(?:removed|disabled|lifted|turned off"
        r"|deactivated|suspended|revoked|waived|off)\b")),
    ("your_restrictions_off", "safety_bypass", STRONG, _w(
        r"\byour (?:\w+ )?(?:restrictions|filters|guidelines|rules|limitations|guardrails"
        r"|safety"
        r" \w+) (?:have been|has been|are|were) (?:now )?(?:\w+ )?(?:lifted|removed|disabled"
        r"|suspended|revoked|turned off|deactivated|waived)\b")),
    ("hypothetical", "safety_bypass", WEAK, _w(
        r"\b(?:purely hypothetical|hypothetically|for educational purposes|for research"
        r" purposes"
        r"|nobody will know|no one will know|just this once|this is just a test)\b")),
    ("unfiltered_output", "safety_bypass", WEAK, _w(
        r"\b(?:unfiltered|uncensored) (?:output|response|answer|version|reply)\b")),
    # -- prompt extraction
    ("extract_prompt", "prompt_extraction", STRONG, _w(
        rf"\b{_REQUEST} (?:me )?(?:back )?(?:\w+ ){{0,4}}?(?:your|the|my|this|its) (?:\w+"
        rf" ){{0,2}}?"
        rf"{_PROMPT_NOUN}")),
    ("extract_yours", "prompt_extraction", STRONG, _w(
        rf"\b{_STRONG_REQUEST} (?:me )?(?:back )?(?:all |all of |the )?your (?:\w+ )?"
        r"(?:instructions|prompt|rules|guidelines|directives|configuration)\b")),
    ("ask_yours", "prompt_extraction", MEDIUM, _w(
        r"\b(?:what are|what were|tell me|show me|give me|list|share) (?:me )?(?:all )?(?:of )?"
        r"your (?:\w+ )?(?:instructions|prompt|rules|directives|configuration)\b")),
    ("extract_above", "prompt_extraction", STRONG, _w(
        r"\b(?:repeat|print|output|show|write|dump|echo|copy|recite|return|give me)(?: out|"
        r" back)?"
        r" (?:me )?(?:all |all of |everything |the )?(?:text|words|everything|all|content"
        r"|lines?"
        r"|messages?|instructions|rules)(?: \w+){0,3}? (?:above"
        r"|before (?:this|my|the first|that))")),
    ("words_of_prompt", "prompt_extraction", STRONG, _w(
        r"\b(?:first|last|exact) (?:\d+ )?(?:words|lines|characters|sentences|tokens) of your\b")),
    ("creators_told", "prompt_extraction", MEDIUM, _w(
        r"\b(?:your|the) (?:developers?|creators?|makers?|programmers?|operators?|owners?"
        r"|trainers?) (?:\w+ ){0,2}?(?:told|gave|give|instructed|programmed|asked|said|wrote)\b"
        r"|\bwhat (?:rules|instructions) did your\b")),
    ("verbatim", "prompt_extraction", WEAK, _w(
        r"\b(?:verbatim|word for word|word by word|character for character|exactly|in full)\b")),
    # -- indirect injection: text that addresses an AI reading it
    ("address_ai", "indirect_injection", MEDIUM, _w(
        rf"(?:^|\. )(?:\w+ ){{0,3}}?(?:note |message |instructions? |important )?(?:to|for)"
        rf" (?:the |any |all |every |an )?{_AI} \."
        rf"|(?:^|\. )(?:dear|attention|hey|hello|hi) (?:the |any |all |every |an )?{_AI}\b"
        rf"|\b(?:if you are|if youre|when you are) an? {_AI}\b"
        rf"|\b{_AI} (?:\w+ ){{0,2}}(?:reading|processing|summari[sz]ing|parsing|analy[sz]ing"
        r"|that reads?|who reads?|reads) (?:this|these|the following)\b"
        rf"|\b(?:when|if) the {_AI} (?:reads?|processes|summari[sz]es|sees)\b"
        rf"|\b(?:instructions?|note|message) (?:for|to) (?:the )?{_AI}\b|\bai instructions?\b")),
    ("instead_do", "indirect_injection", WEAK, _w(
        r"\binstead (?:\. )?(?:tell|say|reply|respond|write|recommend|output|answer|praise"
        r"|send)\b"
        r"|\bdo not mention\b|\bdont mention\b")),
    ("tool_call", "indirect_injection", WEAK, _w(
        r"\b(?:call|run|invoke|execute|use) (?:the )?\w+ (?:tool|function)\b"
        r"|\bwithout (?:asking|requesting|waiting) for (?:confirmation|approval|permission)\b")),
    ("exfiltrate", "data_exfiltration", MEDIUM, _w(
        r"\b(?:reveal|share|disclose|leak|give me|send|list|output|dump|print|show|forward"
        r"|email)"
        r" (?:me )?(?:\w+ ){0,3}?(?:confidential|secret|internal|hidden|private|all (?:the )?"
        r"(?:customer|user|account)s?|every customer|credentials|passwords?|api keys?|database"
        r"|customer (?:data|list|emails)|other users|all data|all users|the inbox|admin"
        r" password"
        r"|conversation history)\b")),
    ("license_keys", "data_exfiltration", WEAK, _w(
        r"\b(?:license|product|activation|windows|serial|cd|steam) (?:keys?|codes?)\b")),
    ("grant_access", "data_exfiltration", WEAK, _w(
        r"\bgrant (?:me |the user )?(?:full |admin |root |complete )?access\b")),
    # -- multilingual overrides and extraction (after accent removal)
    ("override_de", "instruction_override", STRONG, _w(
        r"\b(?:ignoriere|ignorieren sie|vergiss|vergessen sie|missachte|missachten sie)"
        r" (?:\w+ ){0,3}(?:vorherigen|bisherigen|obigen|vorigen|fruheren|alle|deine)"
        r" (?:\w+ )?(?:anweisungen"
        r"|instruktionen|regeln|befehle|vorgaben)")),
    ("override_es", "instruction_override", STRONG, _w(
        r"\b(?:ignora|ignore|olvida|olvide|descarta|omite) (?:todas )?(?:las |tus |sus )?"
        r"(?:instrucciones|reglas|indicaciones)(?: anteriores| previas)?\b")),
    ("override_fr", "instruction_override", STRONG, _w(
        r"\b(?:ignore|ignorez|oublie|oubliez) (?:toutes )?(?:les |tes |vos )?(?:instructions"
        r"|consignes|regles) (?:precedentes|anterieures)")),
    ("override_it_pt_nl", "instruction_override", STRONG, _w(
        r"\b(?:ignora|dimentica) (?:tutte )?(?:le )?(?:istruzioni|regole) precedenti"
        r"|\b(?:ignore|ignora|esqueca) (?:todas )?(?:as )?(?:instrucoes|regras) anteriores"
        r"|\b(?:negeer|vergeet) (?:alle )?(?:de |je )?(?:vorige |eerdere |voorgaande )?"
        r"(?:instructies|regels)")),
    ("extract_multilingual", "prompt_extraction", STRONG, _w(
        r"\b(?:zeige?|gib|verrate|nenne) (?:mir )?(?:deinen|den|dein|deine) (?:system ?prompt"
        r"|anweisungen)|\b(?:revele|revela|muestra|montre|affiche) (?:ton |tu |o |le |el )?"
        r"(?:prompt (?:systeme|do sistema|del sistema)|system ?prompt)")),
]

_NOSPACE_RULES: list[tuple[str, str, float, re.Pattern[str]]] = [
    ("override_nospace", "instruction_override", STRONG, _w(
        r"(?:ignore|disregard|forget)(?:all|any)?(?:the|your)?(?:previous|prior|above|earlier"
        r"|preceding)(?:instructions|rules|directions|prompts?)")),
    ("extract_nospace", "prompt_extraction", STRONG, _w(
        r"(?:reveal|print|show|repeat|output)(?:me)?(?:your|the)(?:system|hidden|initial)"
        r"(?:prompt|instructions)")),
]

_STRUCTURAL_RULES: list[tuple[str, str, float, re.Pattern[str]]] = [
    ("chat_template", "fake_system_message", STRONG, _w(
        r"<\|\s*(?:im_start|im_end|system|user|assistant|endoftext|end|begin_of_text"
        r"|start_header_id|end_header_id|eot_id)\s*\|>|\[/?inst\]|<</?sys>>")),
    ("system_tag", "fake_system_message", STRONG, _w(
        r"</?\s*(?:system|system_prompt|sys|instructions?|developer)\s*>|</\s*user\s*>")),
    ("end_of_prompt", "fake_system_message", STRONG, _w(
        r"\b(?:end of (?:the )?(?:user input|prompt|system prompt|instructions|context)"
        r"|end system prompt|begin(?:ning)?(?: of)? new (?:system )?(?:prompt|instructions))\b")),
    ("role_header", "fake_system_message", WEAK, _m(
        r"^[\s>*#=\-\[(<`]*(?:system|admin|administrator|developer|root|sudo)\s*[\])>`*]*\s*:")),
    ("system_notice", "fake_system_message", MEDIUM, _m(
        r"^[\s>*#=\-\[(<`]*(?:important )?(?:system|admin|administrator|developer|root"
        r"|security)"
        r" (?:message|notice|override|update|alert|instructions?|command|directive)s?\b"
        r"|\b(?:system|admin|administrator) override\b")),
    ("template_header", "fake_system_message", MEDIUM, _m(
        r"^\s*#{2,}\s*(?:instruction|response|system|new instructions?|new rules)\b")),
    ("json_role", "fake_system_message", MEDIUM, _w(
        r"[\"']role[\"']\s*:\s*[\"'](?:system|developer)[\"']")),
    ("html_comment", "indirect_injection", MEDIUM, _w(
        r"<!--\s*(?:system|ai|assistant|instructions?|note to|prompt)\b")),
    ("markdown_exfil", "data_exfiltration", MEDIUM, _w(
        r"!\[[^\]]*\]\(\s*https?://[^)\s]*[?&][\w-]+=[^)\s]*\)")),
    ("send_to_url", "data_exfiltration", MEDIUM, _w(
        r"\b(?:send|forward|post|upload|append|email|transmit|leak|exfiltrate)\b[^\n]{0,60}?"
        r"\b(?:conversation|chat history|history|inbox|e?mails?|data|messages|notes|credentials"
        r"|passwords?|keys?)\b[^\n]{0,40}?\bto\s+(?:https?://|www\.|[\w.+-]+@|the (?:url|link))")),
]

RULES: list[Rule] = (
    [(n, c, w, "words", p) for n, c, w, p in _WORD_RULES]
    + [(n, c, w, "nospace", p) for n, c, w, p in _NOSPACE_RULES]
    + [(n, c, w, "structural", p) for n, c, w, p in _STRUCTURAL_RULES]
)
# fmt: on
