"""The API documentation in a real browser: Swagger UI draws the operations under the strict policy."""

from __future__ import annotations

from tests.e2e.conftest import screenshot


def test_the_api_docs_show_the_operations_in_chromium_without_a_policy_violation(transactional_db, page):
    violations = []
    page.on("console", lambda message: violations.append(message.text) if "Content Security" in message.text else None)
    page.goto("/api/docs/")
    page.wait_for_selector("text=/api/trials/{code}/subjects/", timeout=20_000)
    assert page.locator(".opblock-summary-path", has_text="/api/trials/").count() > 5
    assert violations == []
    screenshot(page, "api-docs")


def test_the_api_root_links_its_schema_and_docs(transactional_db, page):
    page.goto("/api/")
    assert "/api/docs/" in page.content() and "/api/schema/" in page.content()
