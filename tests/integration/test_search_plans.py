"""The query plans the search latency depends on (bench/search.py, 10,000 trainers).

The demo data is tiny, so the planner is told to avoid sequential scans and sorts where it
can: a plan that still sorts means the index no longer matches the query (for example the
Bayesian prior changed in the model without a migration recreating the rank index)."""
import re

from sqlalchemy import func, select

from fittribe.extensions import db
from fittribe.models import TrainerProfile
from fittribe.services.search import SearchFilters, _listed, _ordering, bayesian_rating


def plan_of(session, statement) -> str:
    compiled = statement.compile(db.engine)
    connection = session.connection()
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    connection.exec_driver_sql("SET LOCAL enable_sort = off")
    rows = connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
    return "\n".join(row[0] for row in rows)


def test_top_rated_page_walks_the_rank_index_without_sorting(db_session, demo):
    page = _listed().order_by(*_ordering(SearchFilters().sort), TrainerProfile.id).limit(12).offset(12)
    plan = plan_of(db_session, page)
    assert "ix_trainer_profiles_rating_rank" in plan
    assert "Sort" not in plan, plan


def test_soonest_available_page_walks_the_next_available_index(db_session, demo):
    page = _listed().order_by(*_ordering("available"), TrainerProfile.id).limit(12).offset(12)
    plan = plan_of(db_session, page)
    assert "ix_trainer_profiles_next_available" in plan
    # Only trainers free at the same moment are sorted (by rank), never every listed trainer.
    assert "Presorted Key: trainer_profiles.next_available_at" in plan
    assert not re.search(r"(^|->)\s*Sort\s+\(", plan, re.MULTILINE), plan


def test_rank_expression_is_the_one_migration_14fe94d2a1cf_indexes():
    sql = str(bayesian_rating()).replace("trainer_profiles.", "")
    assert sql == "(CAST(rating_avg AS FLOAT) * rating_count + 40.0) / (rating_count + 10)"


def test_suspended_owners_are_an_anti_join_not_a_join_of_all_users(db_session, demo):
    plan = plan_of(db_session, select(func.count()).select_from(_listed().subquery()))
    assert "Anti Join" in plan and "ix_users_is_suspended" in plan, plan


def test_name_search_can_use_the_trigram_index(db_session, demo):
    condition = TrainerProfile.display_name.icontains("maya", autoescape=True)
    plan = plan_of(db_session, select(func.count()).select_from(TrainerProfile).where(condition))
    assert "ix_trainer_profiles_display_name_trgm" in plan, plan
