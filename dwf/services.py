"""The service registry that ``call`` steps (and AI tools) resolve names against.

Nothing is imported or called by a name a YAML file chose unless the user registered it. Register
objects from Python::

    services = Services()
    services.register(PaymentService)          # under its name, "PaymentService"
    services.register("payments", PaymentService())

or load a file (``dwf run --services services.py``), which registers every public class, function
and object defined in that file under its name.

Calling convention (:meth:`Services.call`):

* the service may be a class (static, class or instance methods; the class is instantiated once,
  without arguments, for instance methods), an object, a module, or a plain function (then
  ``method`` is the function's name);
* a mapping ``input`` is passed as keyword arguments when the signature accepts those names;
  otherwise the input is passed as one positional argument; a method without parameters gets none;
* a parameter named ``idempotency_key`` receives the step's stable idempotency key
  (``<execution id>:<step path>``), so side effects can be made exactly-once;
* sync methods run in a worker thread, async ones on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib.util
import inspect
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MethodType, ModuleType
from typing import Any

from dwf.errors import ConfigurationError, NonRetryableError, RegistryError
from dwf.extensions import did_you_mean

__all__ = ["ServiceInputError", "Services"]


class ServiceInputError(NonRetryableError):
    """The step's input does not fit the service method's signature (retrying cannot help)."""


def _is_public(name: str) -> bool:
    return not name.startswith("_")


class Services:
    """A registry of named services, owned by whoever builds the engine."""

    def __init__(self, services: Mapping[str, Any] | None = None) -> None:
        self._services: dict[str, Any] = {}
        self._instances: dict[str, Any] = {}
        # The callables resolve() found for methods of registered classes and functions, which
        # stay the same until something is registered again (an object's attribute may not).
        self._resolved: dict[tuple[str, str], Callable[..., Any]] = {}
        self._lock = threading.Lock()
        for name, obj in (services or {}).items():
            self.register(name, obj)

    # -- registration

    def register(self, name_or_obj: str | Any, obj: Any = None) -> None:
        """Register ``obj`` under ``name``, or an object under its ``__name__``."""
        if isinstance(name_or_obj, str):
            name = name_or_obj
            if obj is None:
                raise RegistryError(f"register('{name}', obj): obj is missing")
        else:
            obj = name_or_obj
            name = getattr(obj, "__name__", None)  # type: ignore[assignment]
            if not isinstance(name, str):
                raise RegistryError(
                    f"cannot infer a service name for {obj!r}; use register('name', obj)"
                )
        self._services[name] = obj
        self._instances.pop(name, None)
        self._resolved.clear()

    def register_module(self, module: ModuleType) -> list[str]:
        """Register every public class, function and object defined in ``module``."""
        names: list[str] = []
        for name, obj in vars(module).items():
            if not _is_public(name) or isinstance(obj, ModuleType):
                continue
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                continue  # an error type the services raise, not a service
            if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.iscoroutinefunction(obj):
                if getattr(obj, "__module__", None) != module.__name__:
                    continue  # imported from elsewhere, not defined here
            elif type(obj).__module__ != module.__name__:
                continue  # only instances of classes defined in this file
            self.register(name, obj)
            names.append(name)
        return names

    def load_file(self, path: str | os.PathLike[str]) -> list[str]:
        """Import a Python file and register what it defines (see :meth:`register_module`)."""
        file = Path(path).expanduser().resolve()
        if not file.is_file():
            raise ConfigurationError(f"services file '{path}' does not exist")
        module_name = f"dwf_services_{abs(hash(str(file)))}"
        spec = importlib.util.spec_from_file_location(module_name, file)
        if spec is None or spec.loader is None:
            raise ConfigurationError(f"services file '{path}' cannot be imported as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        sys.path.insert(0, str(file.parent))
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise ConfigurationError(
                f"services file '{path}' failed to import: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            sys.path.remove(str(file.parent))
        return self.register_module(module)

    @classmethod
    def from_files(cls, paths: Iterable[str | os.PathLike[str]]) -> Services:
        services = cls()
        for path in paths:
            services.load_file(path)
        return services

    def names(self) -> list[str]:
        return sorted(self._services)

    def __contains__(self, name: object) -> bool:
        return name in self._services

    # -- resolution

    def resolve(self, service: str, method: str) -> Callable[..., Any]:
        """The callable for ``service.method``; a :class:`RegistryError` explains a miss."""
        found = self._resolved.get((service, method))
        if found is not None:
            return found
        try:
            target = self._services[service]
        except KeyError:
            known = ", ".join(self.names()) or "none (pass --services FILE or register some)"
            raise RegistryError(
                f"unknown service '{service}'{did_you_mean(service, self._services)}. "
                f"Registered services: {known}",
                service=service,
            ) from None
        if not _is_public(method):
            raise RegistryError(f"method '{method}' of service '{service}' is private")
        if inspect.isfunction(target) or inspect.iscoroutinefunction(target):
            if method in (target.__name__, "__call__", "call"):
                self._resolved[service, method] = target
                return target  # type: ignore[no-any-return]
            raise RegistryError(
                f"service '{service}' is the function '{target.__name__}'; "
                f"use method: {target.__name__}"
            )
        if inspect.isclass(target):
            raw = inspect.getattr_static(target, method, None)
            if raw is None:
                raise self._no_method(service, method, target)
            if isinstance(raw, staticmethod | classmethod):
                fn = getattr(target, method)
            else:
                fn = getattr(self._instance(service, target), method)
            self._resolved[service, method] = fn
            return fn  # type: ignore[no-any-return]
        fn = getattr(target, method, None)
        if fn is None or not callable(fn):
            raise self._no_method(service, method, target)
        return fn  # type: ignore[no-any-return]

    def _instance(self, name: str, cls: type) -> Any:
        with self._lock:
            instance = self._instances.get(name)
            if instance is None:
                try:
                    instance = cls()
                except TypeError as exc:
                    raise RegistryError(
                        f"service '{name}' is a class whose constructor needs arguments ({exc}); "
                        "register an instance instead: services.register('name', obj)"
                    ) from exc
                self._instances[name] = instance
            return instance

    def _no_method(self, service: str, method: str, target: Any) -> RegistryError:
        methods = sorted(
            n for n in dir(target) if _is_public(n) and callable(getattr(target, n, None))
        )
        return RegistryError(
            f"service '{service}' has no method '{method}'{did_you_mean(method, methods)}. "
            f"Its methods: {', '.join(methods) or 'none'}",
            service=service,
            method=method,
        )

    # -- calling

    async def call(
        self, service: str, method: str, payload: Any, *, idempotency_key: str | None = None
    ) -> Any:
        """Call ``service.method`` with ``payload`` following the calling convention above."""
        fn = self.resolve(service, method)
        label = f"{service}.{method}"
        args, kwargs = _arguments(fn, payload, label)
        if _accepts(fn, "idempotency_key"):
            kwargs["idempotency_key"] = idempotency_key
        sig = _signature(fn)
        if sig is not None:
            _bind(sig, args, kwargs, label)
        if _is_async(fn):
            return await fn(*args, **kwargs)
        result = await _in_daemon_thread(fn, *args, **kwargs)
        if inspect.isawaitable(result):
            return await result
        return result


async def _in_daemon_thread(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run a sync callable in a daemon thread.

    Not ``asyncio.to_thread``: Python cannot stop a thread, and a call that outlived its step
    timeout would otherwise keep the default executor, and so the process, from exiting.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return  # the step timed out or was cancelled meanwhile
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def target() -> None:
        try:
            value = context.run(fn, *args, **kwargs)
        except BaseException as exc:  # handed to the awaiting step
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(settle, None, exc)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, value, None)

    name = f"dwf-service-{getattr(fn, '__qualname__', 'call')}"
    threading.Thread(target=target, name=name, daemon=True).start()
    return await future


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    """``fn``'s signature, or ``None`` when it has none."""
    return _traits(fn)[0]


def _is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` returns a coroutine (a coroutine function, or an object whose
    ``__call__`` is one)."""
    return _traits(fn)[1]


def _traits(fn: Callable[..., Any]) -> tuple[inspect.Signature | None, bool]:
    """``fn``'s signature and whether it is async, kept per function (a bound method's by its
    function: ``getattr`` makes a new bound method every time, with the same traits), since a
    call step asks on every call."""
    key = (fn.__func__, True) if isinstance(fn, MethodType) else (fn, False)
    try:
        return _TRAITS[key]
    except KeyError:
        pass
    except TypeError:  # unhashable
        return _traits_of(fn)
    traits = _traits_of(fn)
    if len(_TRAITS) >= _MAX_TRAITS:
        _TRAITS.clear()
    _TRAITS[key] = traits
    return traits


def _traits_of(fn: Callable[..., Any]) -> tuple[inspect.Signature | None, bool]:
    try:
        sig: inspect.Signature | None = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    call = getattr(fn, "__call__", None)  # noqa: B004
    return sig, inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


_TRAITS: dict[tuple[Any, bool], tuple[inspect.Signature | None, bool]] = {}
_MAX_TRAITS = 4096


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    sig = _signature(fn)
    return sig is not None and name in sig.parameters


def _arguments(
    fn: Callable[..., Any], payload: Any, label: str
) -> tuple[list[Any], dict[str, Any]]:
    sig = _signature(fn)
    if sig is None:
        return ([payload] if payload is not None else []), {}
    params = [p for n, p in sig.parameters.items() if n != "idempotency_key"]
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if not params:
        return [], {}
    if (
        isinstance(payload, Mapping)
        and payload
        and (has_var_kw or all(isinstance(k, str) and k in named for k in payload))
    ):
        return [], dict(payload)
    if not positional:
        if payload is None or payload == {}:
            return [], {}
        raise ServiceInputError(
            f"service method {label} takes only keyword arguments "
            f"({', '.join(sorted(named))}) but the step's input is {type(payload).__name__}",
        )
    if payload is None and positional[0].default is not inspect.Parameter.empty:
        return [], {}
    return [payload], {}


def _bind(sig: inspect.Signature, args: list[Any], kwargs: dict[str, Any], label: str) -> None:
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise ServiceInputError(
            f"service method {label} cannot take the step's input: {exc}"
        ) from exc
