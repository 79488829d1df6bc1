"""The schema is generated once per language and process, not at every request, and says the same as a fresh one.

What it depends on: the language of its descriptions (Accept-Language, or `?lang=`); not the format (JSON and
YAML render the same schema), and not the person (SPECTACULAR_SETTINGS serves it public: every operation is
published to everyone, so nobody's permissions are read).
"""

from __future__ import annotations

import json

import pytest
import yaml
from django.urls import path
from django.utils import translation
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from drf_spectacular.settings import spectacular_settings
from rest_framework.test import APIClient

from ctims import schema_cache
from ctims import urls as ctims_urls
from trials.api.views import InboxApi

pytestmark = pytest.mark.django_db

LIMIT = {
    "en": "Number of results to return per page. More than 1000 return 1000.",
    "ko": "페이지당 반환할 결과 수. 1000개를 넘게 요청하면 1000개를 반환합니다.",
}


@pytest.fixture
def generations(monkeypatch) -> list[str]:
    """The language of each schema generation from here on."""
    calls: list[str] = []
    generate = SchemaGenerator.get_schema

    def counted(self, *args, **kwargs):
        calls.append(translation.get_language())
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(SchemaGenerator, "get_schema", counted)
    return calls


def _get(client, language: str = "en", **query) -> dict:
    response = client.get("/api/schema/", {"format": "json", **query}, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return response.json()


def _limit_description(schema: dict) -> str:
    (limit,) = [p for p in schema["paths"]["/api/trials/"]["get"]["parameters"] if p["name"] == "limit"]
    return limit["description"]


def test_two_requests_generate_the_schema_once(generations):
    client = APIClient()
    _get(client)
    assert generations in ([], ["en"])  # an earlier test of this process may have generated it already
    first = len(generations)
    _get(client)
    assert client.get("/api/schema/", HTTP_ACCEPT_LANGUAGE="en").status_code == 200  # YAML: the same schema
    assert len(generations) == first


def test_english_and_korean_are_each_right_whichever_comes_first(generations):
    client = APIClient()
    for language in ("en", "ko", "en", "ko"):
        assert _limit_description(_get(client, language)) == LIMIT[language], language
    assert _limit_description(_get(client, "en", lang="ko")) == LIMIT["ko"]  # ?lang= wins over the header
    assert len(generations) <= 2 and len(set(generations)) == len(generations)


def test_only_the_languages_the_site_serves_are_kept():
    """`?lang=` and `?version=` take any value: a schema made for one the site does not serve is answered and
    not kept, or each made-up value would hold a whole schema for the rest of the process."""
    client = APIClient()
    for language in ("en", "ko"):
        _get(client, language)
    before = schema_cache.kept()
    assert before <= 2
    for made_up in ("xx", "en-zz", "ko-kr-x-1"):
        assert _limit_description(_get(client, lang=made_up))
    assert _get(client, version="9.9")["info"]["version"] == "0.1.0 (9.9)"
    assert schema_cache.kept() == before


def test_yaml_and_json_say_the_same():
    client = APIClient()
    as_json = _get(client)
    as_yaml = yaml.safe_load(client.get("/api/schema/", HTTP_ACCEPT_LANGUAGE="en").content)
    assert json.loads(json.dumps(as_yaml, default=str)) == as_json


def test_the_schema_is_the_same_for_anyone_and_generated_once_for_all(world, generations):
    """Served public: a person's session or token changes nothing in it."""
    assert spectacular_settings.SERVE_PUBLIC
    anonymous = _get(APIClient())
    count = len(generations)
    for who in (world.alice, world.rhea, world.otto):
        client = APIClient()
        client.force_login(who)
        assert _get(client) == anonymous
    assert len(generations) == count


def test_each_format_is_rendered_once_per_language(monkeypatch):
    """YAML takes 60 ms a rendering: a kept schema's is kept too, each language's its own."""
    renderings = []
    render = OpenApiYamlRenderer.render

    def counted(self, data, *args, **kwargs):
        renderings.append(translation.get_language())
        return render(self, data, *args, **kwargs)

    monkeypatch.setattr(OpenApiYamlRenderer, "render", counted)
    client = APIClient()
    answers = {}
    for language in ("en", "ko", "en", "ko"):
        response = client.get("/api/schema/", HTTP_ACCEPT_LANGUAGE=language)
        assert response.status_code == 200 and response["Content-Type"].startswith("application/vnd.oai.openapi")
        assert LIMIT[language] in response.content.decode(), language
        assert answers.setdefault(language, response.content) == response.content
    assert len(renderings) <= 2 and len(set(renderings)) == len(renderings)


@pytest.mark.parametrize("language", ["en", "ko"])
def test_the_cached_answer_equals_a_fresh_generation(language):
    client = APIClient()
    _get(client, language)
    cached = _get(client, language)
    with translation.override(language):
        fresh = SchemaGenerator().get_schema(request=None, public=True)
        fresh = json.loads(OpenApiJsonRenderer().render(fresh))
    assert cached == fresh


# A smaller site: the schema's own route and the inbox (pytest.mark.urls below).
urlpatterns = [
    *(p for p in ctims_urls.urlpatterns if getattr(p, "name", None) == "api-schema"),
    path("api/inbox/", InboxApi.as_view()),
]


@pytest.mark.urls(__name__)
def test_another_url_conf_gets_a_schema_of_its_own(generations):
    """A test (or anything) that serves other routes gets their schema, not the one cached for the site's."""
    schema = _get(APIClient())
    assert list(schema["paths"]) == ["/api/inbox/"]
    assert generations == ["en"]
