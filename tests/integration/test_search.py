"""Trainer search and profile pages: filters, ranking, pagination, fragments, bad input."""
import re

import pytest
from sqlalchemy import func, select

from fittribe.extensions import db
from fittribe.models import Specialty, TrainerProfile, User
from tests.helpers import HTMX, text_of

DEMO_LISTED = {"Maya Chen", "Lucía Fernández", "Kwame Mensah", "Anna Kowalski", "Diego Santos"}


def names(response) -> list[str]:
    return re.findall(r'id="trainer-\d+-name"><a href="[^"]+">([^<]+)</a>', text_of(response))


def search(client, query: str = "", **kwargs):
    return client.get(f"/trainers?{query}", **kwargs)


def test_all_listed_trainers_sorted_by_bayesian_rating(client, demo):
    response = search(client)
    assert response.status_code == 200
    # Anna has 5.0 from 41 reviews, Maya 4.9 from 138: the prior keeps Maya first.
    assert names(response) == ["Maya Chen", "Lucía Fernández", "Anna Kowalski", "Kwame Mensah", "Diego Santos"]
    assert "Jordan Pending" not in text_of(response)


@pytest.mark.parametrize("query, expected", [
    ("q=yoga", {"Lucía Fernández"}),
    ("q=MAYA", {"Maya Chen"}),
    ("q=coach", {"Maya Chen", "Kwame Mensah"} - {"Kwame Mensah"}),  # headline match only
    ("specialty=mobility", {"Maya Chen", "Lucía Fernández", "Anna Kowalski"}),
    ("min_price=50", {"Maya Chen", "Kwame Mensah", "Anna Kowalski"}),
    ("max_price=45", {"Lucía Fernández", "Diego Santos"}),
    ("min_price=45&max_price=65", {"Maya Chen", "Lucía Fernández", "Kwame Mensah"}),
    ("min_price=40.5&max_price=44.99", set()),
    ("min_rating=4.8", {"Maya Chen", "Lucía Fernández", "Anna Kowalski"}),
    ("min_rating=4.5", DEMO_LISTED),
    ("language=es", {"Lucía Fernández", "Diego Santos"}),
    ("language=de", {"Anna Kowalski"}),
    ("specialty=mobility&language=en&max_price=70", {"Maya Chen", "Lucía Fernández"}),
    ("specialty=running&language=pt&min_rating=4.5&q=marathon", {"Diego Santos"}),
    ("specialty=boxing&language=es", set()),
    ("q=%25", set()),  # a literal % is a character, not a wildcard
    ("q=_", set()),
])
def test_filters_and_combinations(client, demo, query, expected):
    response = search(client, query)
    assert response.status_code == 200
    assert set(names(response)) == expected


def test_sort_by_price(client, demo):
    assert names(search(client, "sort=price_asc"))[0] == "Diego Santos"
    assert names(search(client, "sort=price_desc"))[0] == "Anna Kowalski"


def test_soonest_available_sort_follows_the_demo_trainers_hours(client, demo):
    # The full rules (ties, nothing free last, the card) are in test_next_available.py.
    with client.application.app_context():
        free_at = dict(db.session.execute(select(TrainerProfile.display_name, TrainerProfile.next_available_at)).all())
    shown = names(search(client, "sort=available"))
    assert set(shown) == DEMO_LISTED and all(free_at[name] for name in shown)
    assert [free_at[name] for name in shown] == sorted(free_at[name] for name in shown)


def test_no_results_shows_help(client, demo):
    response = search(client, "q=underwater+basket+weaving")
    assert response.status_code == 200
    html = text_of(response)
    assert "No trainers match these filters" in html and "Show all trainers" in html


def test_htmx_request_returns_fragment_only_and_page_otherwise(client, demo):
    fragment = search(client, "specialty=yoga", headers=HTMX)
    html = text_of(fragment)
    assert "<html" not in html and "<form" not in html
    assert names(fragment) == ["Lucía Fernández"]
    assert {"HX-Request", "HX-Request-Type"} <= set(fragment.vary)

    page = search(client, "specialty=yoga")
    assert text_of(page).startswith("<!doctype html>") and 'id="search-form"' in text_of(page)
    assert names(page) == ["Lucía Fernández"]
    # htmx 4 history restores ask for the full page.
    restore = search(client, "specialty=yoga", headers={"HX-History-Restore-Request": "true",
                                                        "HX-Request-Type": "full"})
    assert "<html" in text_of(restore)


def test_search_form_keeps_values_and_is_wired_for_htmx(client, demo):
    html = text_of(search(client, "q=run&specialty=running&min_price=10&language=pt&sort=price_asc"))
    assert 'value="run"' in html
    assert re.search(r'<option selected value="running">|<option value="running" selected>', html)
    assert 'hx-push-url="true"' in html and 'hx-target="#results"' in html
    assert 'action="/trainers" method="get"' in html  # works without JS


@pytest.fixture
def many_trainers(app, demo):
    from fittribe.seed import seed_bulk_trainers

    with app.app_context():
        seed_bulk_trainers(40)
        return db.session.scalar(select(func.count(TrainerProfile.id)).join(TrainerProfile.user).where(
            TrainerProfile.is_approved.is_(True), User.is_suspended.is_(False)))


def test_pagination(client, many_trainers):
    page_size = 12
    pages = [names(search(client, f"sort=price_asc&page={n}")) for n in (1, 2, 3, 4, 5)]
    seen = [name for page in pages for name in page]
    assert [len(p) for p in pages[:3]] == [page_size] * 3
    assert len(seen) == many_trainers
    html = search(client, "sort=price_asc&page=2").get_data(as_text=True)
    assert f"{many_trainers} trainers found" in html
    assert 'rel="prev"' in html and 'rel="next"' in html
    assert 'href="/trainers?sort=price_asc&amp;page=3"' in html  # links keep the filters
    assert 'hx-get="/trainers?sort=price_asc&amp;page=3"' in html
    beyond = search(client, "page=99")
    assert beyond.status_code == 200 and names(beyond) == []


@pytest.mark.parametrize("query, message", [
    ("min_price=-5", "from 0 to 10000"),
    ("max_price=99999999", "from 0 to 10000"),
    ("min_price=abc", "Not a valid decimal"),
    ("min_price=80&max_price=20", "at least the min price"),
    ("specialty=underwater-rugby", "Unknown specialty"),
    ("min_rating=7", "Not a valid choice"),
    ("language=xx", "Not a valid choice"),
    ("sort=drop_table", "Not a valid choice"),
    ("page=0", "Page out of range"),
    ("page=-1", "Page out of range"),
    ("page=abc", "Not a valid integer"),
    ("q=" + "x" * 101, "at most 100"),
])
def test_bad_filters_give_400_with_a_clear_message(client, demo, query, message):
    response = search(client, query)
    assert response.status_code == 400
    assert "Please check your filters" in text_of(response)
    assert message.lower() in text_of(response).lower()
    fragment = search(client, query, headers=HTMX)
    assert fragment.status_code == 400 and "<html" not in text_of(fragment)


@pytest.mark.parametrize("text", [
    "' OR 1=1 --", "\"; DROP TABLE users; --", "<script>alert(1)</script>", "%' UNION SELECT 1 --",
    "\\", "😀 émoji", "\x00",
])
def test_injection_strings_are_harmless(app, client, demo, text):
    response = client.get("/trainers", query_string={"q": text})
    assert response.status_code == (400 if "\x00" in text else 200)
    body = response.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in body
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 8  # nothing dropped, nothing added


def test_profile_page(client, demo):
    response = client.get("/trainers/maya-chen")
    assert response.status_code == 200
    html = text_of(response)
    for text in ("Maya Chen", "Strength & mobility coach", "$65", "Strength training", "Chinese", "Book now",
                 'id="availability"', 'id="reviews"', "Offline", "Rated 4.9 out of 5 from 138 reviews"):
        assert text in html
    fragment = client.get("/trainers/maya-chen", headers=HTMX)
    assert "<html" not in text_of(fragment) and "Maya Chen" in text_of(fragment)


def test_unapproved_trainer_is_hidden_except_from_owner_and_admin(client, visitor, demo):
    assert client.get("/trainers/jordan-pending").status_code == 404
    assert "Jordan" not in text_of(client.get("/trainers?q=jordan"))
    assert "Jordan" not in text_of(client.get("/"))
    visitor.login("member@fittribe.example")
    assert visitor.get("/trainers/jordan-pending").status_code == 404
    visitor.logout()
    visitor.login("pending@fittribe.example")
    preview = visitor.get("/trainers/jordan-pending")
    assert preview.status_code == 200 and "Only you and admins can see this preview" in text_of(preview)
    visitor.logout()
    visitor.login("admin@fittribe.example")
    assert visitor.get("/trainers/jordan-pending").status_code == 200


def test_suspended_trainer_is_not_listed(app, client, demo):
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "trainer@fittribe.example"))
        user.is_suspended = True
        db.session.commit()
    assert "Maya Chen" not in names(search(client))
    assert client.get("/trainers/maya-chen").status_code == 404


def test_homepage(client, demo):
    response = client.get("/")
    html = text_of(response)
    assert response.status_code == 200
    assert set(names(response)) == DEMO_LISTED
    assert html.count('presence presence-offline') == 5  # placeholder the real-time layer makes live
    assert 'action="/trainers" method="get"' in html and "Sign up free" in html


def test_homepage_empty_state(client, app):
    html = text_of(client.get("/"))
    assert "No trainers are listed yet" in html


def test_unknown_specialty_links_from_profile_work(client, demo):
    with client.application.app_context():
        slugs = db.session.scalars(select(Specialty.slug)).all()
    for slug in slugs:
        assert search(client, f"specialty={slug}").status_code == 200
