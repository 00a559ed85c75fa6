"""Chat templates: render a tokenizer_config.json `chat_template` with jinja2 the way transformers does.

Same environment as transformers' `_compile_jinja_template`: ImmutableSandboxedEnvironment with
trim_blocks/lstrip_blocks and loopcontrols, a `tojson` filter that does not HTML-escape, and the globals
`raise_exception`, `strftime_now`, `dict` and an underscore-refusing `namespace`. The template sees
`messages`, `add_generation_prompt`, `tools`, `documents` and the special tokens (`bos_token`, ...).
Templates are untrusted code from the Hub: the sandbox is the point.
"""
from __future__ import annotations

import functools
import json
from datetime import datetime

from edgeslm.errors import EdgeSLMError


def render_chat_template(template: str, messages: list[dict], *, add_generation_prompt: bool = True,
                         tools: list[dict] | None = None, documents: list[dict] | None = None, **kwargs) -> str:
    """The prompt text for `messages`; a template's raise_exception() becomes an EdgeSLMError."""
    import jinja2

    for message in messages:
        if not isinstance(message, dict):
            raise EdgeSLMError(f"chat messages must be dicts with 'role' and 'content', got {message!r}")
    try:
        return _compile(template).render(messages=messages, tools=tools, documents=documents,
                                         add_generation_prompt=add_generation_prompt, **kwargs)
    except jinja2.TemplateError as err:
        raise EdgeSLMError(f"chat template failed: {err}", path="tokenizer_config.json",
                           fix="check the messages (roles, order) against what this model's template accepts") from None


@functools.lru_cache(maxsize=8)
def _compile(template: str):
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    class TemplateDict:
        """dict() and dict.fromkeys() without handing the dict type itself to the template."""

        def __call__(self, *args, **kwargs):
            return dict(*args, **kwargs)

        def fromkeys(self, *args, **kwargs):
            return dict.fromkeys(*args, **kwargs)

    class TemplateNamespace(jinja2.utils.Namespace):
        """namespace() that refuses underscore names (no reaching CPython internals through attributes)."""

        def __init__(*args, **kwargs):
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                TemplateNamespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name, value):
            TemplateNamespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name):
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(f"namespace attribute {name!r} starts with an underscore")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals.update(raise_exception=raise_exception, strftime_now=strftime_now, dict=TemplateDict(),
                       namespace=TemplateNamespace)
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as err:
        raise EdgeSLMError(f"chat_template does not parse: {err}", path="tokenizer_config.json",
                           fix="fix or remove \"chat_template\" in tokenizer_config.json") from None
