"""The OpenAPI schema, generated once per process and language instead of at every request (0.2 to 0.3 s each),
and rendered once per format (YAML takes 60 ms a time).

What /api/schema/ serves is made from the code (views, serializers, URL conf), the settings and the language of
its descriptions (Accept-Language or `?lang=`, active while it is generated). The format is not part of it: JSON
and YAML render the same schema. Nor is the person: SPECTACULAR_SETTINGS serves it public (SERVE_PUBLIC), so every
operation is published to everyone and nobody's permissions are read; a schema served per person (not public)
is never kept.
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import get_urlconf
from django.utils import translation
from drf_spectacular import renderers
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.views import SpectacularAPIView

# The settings a schema is made from besides the code: a change (a test's override) empties the cache.
SCHEMA_SETTINGS = {
    "ROOT_URLCONF",
    "LANGUAGES",
    "LANGUAGE_CODE",
    "USE_I18N",
    "INSTALLED_APPS",
    "REST_FRAMEWORK",
    "SPECTACULAR_SETTINGS",
}

_schemas: dict[tuple, dict] = {}
# Each kept schema's renderings, by id(schema) (alive while it is kept) and then (renderer, media type).
_renderings: dict[int, dict[tuple, bytes]] = {}
# One generation at a time: a second request for the same schema waits for the first instead of making it again,
# and drf-spectacular's generator keeps state in globals while it runs.
_lock = threading.Lock()


class CachedSchemaGenerator(SchemaGenerator):
    """drf-spectacular's generator, keeping each public schema it makes for the rest of the process.

    The schema is shared between requests: whoever gets it reads it and never changes it (the renderers do not).
    """

    def get_schema(self, request=None, public=False):
        language = translation.get_language()
        version = self.api_version or getattr(request, "version", None)
        # Kept: the public schema in a language the site serves. Not kept: one per person, one for `?lang=` or
        # `?version=` values a client makes up (each would hold a whole schema for the rest of the process).
        kept = public and language in dict(settings.LANGUAGES) and version is None
        if not kept or self.patterns is not None or not isinstance(self.urlconf, str | None):
            return super().get_schema(request=request, public=public)
        key = (language, self.urlconf or get_urlconf() or settings.ROOT_URLCONF)
        schema = _schemas.get(key)
        if schema is None:
            with _lock:
                schema = _schemas.get(key)
                if schema is None:
                    schema = _schemas[key] = super().get_schema(request=request, public=public)
                    _renderings[id(schema)] = {}
        return schema


class _RenderOnce:
    """A schema renderer that renders a kept schema once per media type (its parameters, e.g. JSON's indent,
    included) and answers the same bytes after."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        renderings = _renderings.get(id(data))
        key = (type(self), accepted_media_type)
        if renderings is None or key not in renderings:
            rendered = super().render(data, accepted_media_type, renderer_context)
            if renderings is None:
                return rendered
            renderings[key] = rendered
        return renderings[key]


class YamlRenderer(_RenderOnce, renderers.OpenApiYamlRenderer):
    pass


class YamlRenderer2(_RenderOnce, renderers.OpenApiYamlRenderer2):
    pass


class JsonRenderer(_RenderOnce, renderers.OpenApiJsonRenderer):
    pass


class JsonRenderer2(_RenderOnce, renderers.OpenApiJsonRenderer2):
    pass


class SchemaView(SpectacularAPIView):
    """/api/schema/: drf-spectacular's view, with the schema and its renderings kept."""

    generator_class = CachedSchemaGenerator
    renderer_classes = [YamlRenderer, YamlRenderer2, JsonRenderer, JsonRenderer2]


def kept() -> int:
    """How many schemas are kept: one per language the site serves (and URL conf), at most."""
    return len(_schemas)


def clear() -> None:
    """Forget every schema made: the next request makes it again."""
    with _lock:
        _schemas.clear()
        _renderings.clear()


@receiver(setting_changed)
def _setting_changed(*, setting, **kwargs):
    if setting in SCHEMA_SETTINGS:
        clear()
