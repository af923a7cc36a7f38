"""The console on a phone-sized screen: every main page fits the width (tables scroll inside
their own box), so nothing needs sideways scrolling of the whole page."""

from __future__ import annotations

from .pages import signed_in
from .showcase import showcase

PHONE = {"width": 390, "height": 844}
PAGE_OVERFLOW_JS = "() => document.documentElement.scrollWidth - window.innerWidth"
# The innermost elements sticking out on the right: what to fix when the test fails.
WIDEST_JS = """() => [...document.querySelectorAll('body *')]
  .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
  .filter((el) => ![...el.children].some(
      (c) => c.getBoundingClientRect().right > window.innerWidth + 1))
  .slice(0, 5)
  .map((el) => `${el.tagName.toLowerCase()}.${el.className}: `
    + (el.textContent || '').trim().slice(0, 40))
"""


def test_main_pages_fit_a_phone_screen(new_page):
    show = showcase()
    slug = show.tenant.slug
    urls = {
        show.agent: [
            f"/t/{slug}/workspace/?q=acme.example",
            f"/t/{slug}/cases/{show.open_case.pk}/",
        ],
        show.referee: [
            f"/t/{slug}/cases/{show.attended.case_id}/attended/{show.attended.pk}/",
        ],
        show.reviewer: [
            f"/t/{slug}/review/",
            f"/t/{slug}/review/{show.pending_case.pk}/",
            f"/t/{slug}/review/security/",
            f"/t/{slug}/policy/edit/",
            f"/t/{slug}/policy/diff/",
            f"/t/{slug}/audit/",
            "/account/preferences/",
        ],
    }
    overflowing = {}
    for user, paths in urls.items():
        page = new_page(viewport=PHONE)
        signed_in(page, user)
        for path in paths:
            response = page.goto(path)
            assert response is not None and response.status == 200, path
            extra = page.evaluate(PAGE_OVERFLOW_JS)
            if extra > 0:
                overflowing[path] = (extra, page.evaluate(WIDEST_JS))
    assert overflowing == {}, f"pages wider than the screen (extra px): {overflowing}"
