"""Pay (earnings, payouts, the payout CSV) and reviewer metrics, through the real services."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from marlin import roles
from reviews.earning_selectors import (
    Period,
    contractor_earnings,
    payout_by_contractor,
    totals_by_reviewer,
)
from reviews.earning_services import earning_amount
from reviews.metrics import reviewer_metrics
from reviews.models import Earning, Review
from reviews.services import review_decide
from tasks.models import Project, Task
from tests.factories import ProjectFactory, UserFactory
from tests.tasks.helpers import create_task, decide, generate_all, submit

MARCH = Period(start=date(2024, 3, 1), end=date(2024, 3, 31))


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def submitted_task(*, contractor, project, repository, active_seconds: int = 0) -> Task:
    """A task under review whose contractor spent `active_seconds` on it."""
    task = submit(
        generate_all(create_task(contractor=contractor, project=project, repository=repository))
    )
    Task.objects.filter(pk=task.pk).update(active_seconds=active_seconds)
    task.refresh_from_db()
    return task


def decide_at(moment: datetime, task: Task, *, reviewer, decision="ACCEPT", feedback=""):
    with time_machine.travel(moment, tick=False):
        return decide(task, reviewer=reviewer, decision=decision, feedback=feedback)


def project_with(*, pay: str, cap: str | None = None) -> Project:
    project = ProjectFactory(pay_per_task=pay, hourly_rate_cap=cap)
    project.refresh_from_db()  # Decimals, as the services read them
    return project


# earning_amount ---------------------------------------------------------------------------


def test_without_a_cap_the_full_rate_is_earned_however_short_the_time():
    project = Project(pay_per_task=Decimal("280.00"), hourly_rate_cap=None)
    assert earning_amount(project=project, active_seconds=0) == (Decimal("280.00"), False)
    assert earning_amount(project=project, active_seconds=60) == (Decimal("280.00"), False)


@pytest.mark.parametrize(
    ("cap", "seconds", "expected"),
    [
        ("60.00", 1800, Decimal("30.00")),  # half an hour at 60/h
        ("60.00", 1, Decimal("0.02")),  # 0.01666… rounds to the cent
        ("10.00", 9, Decimal("0.03")),  # 0.025: half-up, not half-even (0.02)
        ("45.00", 1234, Decimal("15.43")),  # 15.425 → 15.43
        ("60.00", 0, Decimal("0.00")),
    ],
)
def test_a_cap_with_little_time_pays_the_capped_amount_exactly(cap, seconds, expected):
    project = Project(pay_per_task=Decimal("280.00"), hourly_rate_cap=Decimal(cap))
    amount, capped = earning_amount(project=project, active_seconds=seconds)
    assert (amount, capped) == (expected, True)
    assert amount.as_tuple().exponent == -2


@pytest.mark.parametrize("seconds", [16_800, 16_801, 36_000])
def test_a_cap_with_enough_time_pays_the_full_rate(seconds):
    # 60/h reaches the 280 rate at 4h40m (16,800 s): from there on the rate is paid uncapped.
    project = Project(pay_per_task=Decimal("280.00"), hourly_rate_cap=Decimal("60.00"))
    assert earning_amount(project=project, active_seconds=seconds) == (Decimal("280.00"), False)


def test_just_under_the_cap_threshold_is_still_capped():
    project = Project(pay_per_task=Decimal("280.00"), hourly_rate_cap=Decimal("60.00"))
    assert earning_amount(project=project, active_seconds=16_799) == (Decimal("279.98"), True)


# Earning at acceptance --------------------------------------------------------------------


def test_accepting_records_one_earning_that_later_rate_changes_do_not_touch(
    ready_repository, contractor, reviewer
):
    project = project_with(pay="280.00")
    task = submitted_task(
        contractor=contractor, project=project, repository=ready_repository, active_seconds=600
    )
    review = decide(task, reviewer=reviewer)
    # The same reviewer's double click returns the same decision and records nothing more.
    again = review_decide(task=task, reviewer=reviewer, decision="ACCEPT", feedback="")
    assert again.pk == review.pk

    earning = Earning.objects.get(task=task)
    assert Earning.objects.count() == 1
    assert earning.contractor == contractor
    assert earning.amount == Decimal("280.00")
    assert earning.rate == Decimal("280.00")
    assert earning.active_seconds == 600
    assert earning.capped is False
    task.refresh_from_db()
    assert earning.earned_at == task.accepted_at

    project.pay_per_task = Decimal("500.00")
    project.hourly_rate_cap = Decimal("1.00")
    project.save()

    earning.refresh_from_db()
    assert (earning.amount, earning.rate, earning.capped) == (
        Decimal("280.00"),
        Decimal("280.00"),
        False,
    )
    summary = contractor_earnings(user=contractor)
    assert summary.accepted == Decimal("280.00")
    assert summary.pending == Decimal("0")


def test_accepting_under_a_cap_records_the_capped_amount(ready_repository, contractor, reviewer):
    project = project_with(pay="280.00", cap="60.00")
    task = submitted_task(
        contractor=contractor, project=project, repository=ready_repository, active_seconds=1800
    )
    decide(task, reviewer=reviewer)
    earning = Earning.objects.get(task=task)
    assert (earning.amount, earning.rate, earning.capped, earning.active_seconds) == (
        Decimal("30.00"),
        Decimal("280.00"),
        True,
        1800,
    )


def test_a_bounce_records_no_earning(ready_repository, project, contractor, reviewer):
    task = submitted_task(contractor=contractor, project=project, repository=ready_repository)
    decide(task, reviewer=reviewer, decision="BOUNCE", feedback="Scores contradict.")
    assert not Earning.objects.exists()


# contractor_earnings ------------------------------------------------------------------------


def test_contractor_earnings_split_pending_from_accepted(
    ready_repository, contractor, other_contractor, reviewer
):
    project = project_with(pay="280.00", cap="60.00")
    accepted = submitted_task(
        contractor=contractor, project=project, repository=ready_repository, active_seconds=36_000
    )
    pending = submitted_task(
        contractor=contractor, project=project, repository=ready_repository, active_seconds=1800
    )
    bounced = submitted_task(
        contractor=contractor, project=project, repository=ready_repository, active_seconds=7200
    )
    someone_elses = submitted_task(
        contractor=other_contractor,
        project=project,
        repository=ready_repository,
        active_seconds=36_000,
    )
    decide(accepted, reviewer=reviewer)
    decide(bounced, reviewer=reviewer, decision="BOUNCE", feedback="Redo the scores.")
    decide(someone_elses, reviewer=reviewer)

    summary = contractor_earnings(user=contractor)

    assert summary.accepted == Decimal("280.00")
    assert summary.pending == Decimal("30.00")
    assert summary.total == Decimal("310.00")
    pay = {task.pk: (task.status, task.pay) for task in summary.tasks}
    assert pay == {
        accepted.pk: (Task.Status.ACCEPTED, Decimal("280.00")),
        pending.pk: (Task.Status.SUBMITTED, Decimal("30.00")),
        bounced.pk: (Task.Status.BOUNCED, None),
    }


def test_the_earnings_page_shows_the_contractor_their_own_figures(
    client, ready_repository, contractor, reviewer
):
    project = project_with(pay="280.00", cap="60.00")
    task = submitted_task(
        contractor=contractor, project=project, repository=ready_repository, active_seconds=1800
    )
    client.force_login(contractor)
    response = client.get(reverse("reviews:earnings"))
    assert response.status_code == 200
    assert response.context["summary"].pending == Decimal("30.00")
    decide(task, reviewer=reviewer)
    response = client.get(reverse("reviews:earnings"))
    assert response.context["summary"].accepted == Decimal("30.00")
    assert response.context["summary"].pending == Decimal("0")


# Payouts over a period ----------------------------------------------------------------------


@pytest.fixture
def march_decisions(ready_repository, project, contractor, other_contractor, reviewer):
    """Decisions around March 2024 (UTC): the ones inside it and the ones just outside."""
    project.refresh_from_db()  # pay 280.00, no cap
    cheap = project_with(pay="120.00")
    rex = UserFactory(username="rex", role=roles.REVIEWER)

    def task(who, on, seconds):
        return submitted_task(
            contractor=who, project=on, repository=ready_repository, active_seconds=seconds
        )

    tasks = {
        "carol_march": task(contractor, project, 5400),
        "dave_bounced": task(other_contractor, cheap, 1800),
        "dave_last_minute": task(other_contractor, cheap, 900),
        "carol_april": task(contractor, project, 3600),
        "carol_february": task(contractor, project, 3600),
    }
    decide_at(at(2024, 3, 5, 12), tasks["carol_march"], reviewer=reviewer)
    decide_at(
        at(2024, 3, 10, 9),
        tasks["dave_bounced"],
        reviewer=reviewer,
        decision="BOUNCE",
        feedback="The justification does not match the scores.",
    )
    decide_at(at(2024, 3, 31, 23, 59, 59), tasks["dave_last_minute"], reviewer=rex)
    decide_at(at(2024, 4, 1, 0, 0, 0), tasks["carol_april"], reviewer=rex)
    decide_at(at(2024, 2, 29, 23, 59, 59), tasks["carol_february"], reviewer=reviewer)
    return {"rex": rex, **tasks}


def test_payout_by_contractor_counts_only_acceptances_inside_the_period(
    march_decisions, contractor, other_contractor
):
    rows = payout_by_contractor(period=MARCH)
    by_contractor = {row["contractor_id"]: row for row in rows}
    assert len(rows) == 2
    assert by_contractor[contractor.pk] == {
        "contractor_id": contractor.pk,
        "username": "carol",
        "email": "carol@example.com",
        "tasks": 1,
        "judged": 0,
        "judging_amount": Decimal("0"),
        "hours": 1.5,
        "amount": Decimal("280.00"),
    }
    assert by_contractor[other_contractor.pk] == {
        "contractor_id": other_contractor.pk,
        "username": "dave",
        "email": "dave@example.com",
        "tasks": 1,
        "judged": 0,
        "judging_amount": Decimal("0"),
        "hours": 0.25,
        "amount": Decimal("120.00"),
    }


def test_payout_periods_are_whole_days_inclusive(march_decisions, contractor):
    april_first = payout_by_contractor(period=Period(start=date(2024, 4, 1), end=date(2024, 4, 1)))
    assert [(r["username"], r["tasks"], r["amount"]) for r in april_first] == [
        ("carol", 1, Decimal("280.00"))
    ]
    leap_day = payout_by_contractor(period=Period(start=date(2024, 2, 29), end=date(2024, 2, 29)))
    assert [(r["username"], r["tasks"]) for r in leap_day] == [("carol", 1)]
    assert payout_by_contractor(period=Period(start=date(2024, 5, 1), end=date(2024, 5, 31))) == []


def test_totals_by_reviewer_count_only_decisions_inside_the_period(march_decisions, reviewer):
    rex = march_decisions["rex"]
    rows = {row["username"]: row for row in totals_by_reviewer(period=MARCH)}
    assert rows == {
        "rita": {
            "reviewer_id": reviewer.pk,
            "username": "rita",
            "decisions": 2,
            "accepted": 1,
            "bounced": 1,
            "accepted_pay": Decimal("280.00"),
        },
        "rex": {
            "reviewer_id": rex.pk,
            "username": "rex",
            "decisions": 1,
            "accepted": 1,
            "bounced": 0,
            "accepted_pay": Decimal("120.00"),
        },
    }


def test_totals_by_reviewer_pay_only_the_accepted_round_of_a_revised_task(
    ready_repository, project, contractor, reviewer
):
    from tasks import services as task_services

    project.refresh_from_db()
    rex = UserFactory(username="rex", role=roles.REVIEWER)
    task = submitted_task(contractor=contractor, project=project, repository=ready_repository)
    decide_at(at(2024, 3, 2, 10), task, reviewer=rex, decision="BOUNCE", feedback="Fix it.")
    task = submit(task_services.task_revise(task=task, by=contractor))
    decide_at(at(2024, 3, 3, 10), task, reviewer=reviewer)

    rows = {row["username"]: row for row in totals_by_reviewer(period=MARCH)}
    assert (rows["rex"]["decisions"], rows["rex"]["accepted"], rows["rex"]["bounced"]) == (1, 0, 1)
    assert rows["rex"]["accepted_pay"] == Decimal("0")
    assert (rows["rita"]["decisions"], rows["rita"]["accepted"]) == (1, 1)
    assert rows["rita"]["accepted_pay"] == Decimal("280.00")
    assert payout_by_contractor(period=MARCH)[0]["amount"] == Decimal("280.00")


# The payout page and its CSV ------------------------------------------------------------------

PAYOUT_HEADER = [
    "contractor_id",
    "username",
    "email",
    "period_start",
    "period_end",
    "tasks",
    "hours",
    "amount",
    "judged_pairs",
    "judging_amount",
]


def csv_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def test_the_payout_csv_neutralises_formulas_and_has_exact_figures(
    client, admin_user, ready_repository, project, contractor, reviewer
):
    project.refresh_from_db()
    formula = UserFactory(
        username='=HYPERLINK("http://x")', email="+cmd@example.com", role=roles.CONTRACTOR
    )
    other = UserFactory(username="-2+3", email="@SUM(A1)@example.com", role=roles.CONTRACTOR)
    seconds = {contractor: 5400, formula: 900, other: 3600}
    for who, active in seconds.items():
        task = submitted_task(
            contractor=who, project=project, repository=ready_repository, active_seconds=active
        )
        decide_at(at(2024, 3, 15, 12), task, reviewer=reviewer)

    client.force_login(admin_user)
    response = client.get(
        reverse("reviews:payouts"), {"format": "csv", "start": "2024-03-01", "end": "2024-03-31"}
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="marlin-payout-2024-03-01-2024-03-31.csv"' in response["Content-Disposition"]
    header, *rows = csv_rows(response)
    assert header == PAYOUT_HEADER
    assert len(rows) == 3
    by_id = {row[0]: row for row in rows}
    assert by_id[str(formula.pk)] == [
        str(formula.pk),
        '\'=HYPERLINK("http://x")',
        "'+cmd@example.com",
        "2024-03-01",
        "2024-03-31",
        "1",
        "0.25",
        "280.00",
        "0",
        "0.00",
    ]
    assert by_id[str(other.pk)] == [
        str(other.pk),
        "'-2+3",
        "'@SUM(A1)@example.com",
        "2024-03-01",
        "2024-03-31",
        "1",
        "1.0",
        "280.00",
        "0",
        "0.00",
    ]
    assert by_id[str(contractor.pk)] == [
        str(contractor.pk),
        "carol",
        "carol@example.com",
        "2024-03-01",
        "2024-03-31",
        "1",
        "1.5",
        "280.00",
        "0",
        "0.00",
    ]
    for row in rows:
        assert not row[1].startswith(("=", "+", "-", "@"))
        assert not row[2].startswith(("=", "+", "-", "@"))


def test_the_payout_csv_of_an_empty_period_is_just_the_header(client, admin_user):
    client.force_login(admin_user)
    response = client.get(
        reverse("reviews:payouts"), {"format": "csv", "start": "2024-03-01", "end": "2024-03-31"}
    )
    assert response.status_code == 200
    assert csv_rows(response) == [PAYOUT_HEADER]


def test_the_payout_page_shows_the_period_totals(client, admin_user, march_decisions):
    client.force_login(admin_user)
    response = client.get(reverse("reviews:payouts"), {"start": "2024-03-01", "end": "2024-03-31"})
    assert response.status_code == 200
    assert response.context["total_tasks"] == 2
    assert response.context["total_amount"] == Decimal("400.00")
    assert '<strong id="total-amount">$400.00</strong>' in response.content.decode()


@pytest.mark.parametrize("fmt", [None, "csv"])
def test_a_period_that_starts_after_it_ends_is_a_400_with_a_message(client, admin_user, fmt):
    client.force_login(admin_user)
    query = {"start": "2024-04-01", "end": "2024-03-01"}
    if fmt:
        query["format"] = fmt
    response = client.get(reverse("reviews:payouts"), query)
    assert response.status_code == 400
    assert not response.streaming
    assert response["Content-Type"].startswith("text/html")
    assert "The period starts after it ends." in response.content.decode()


@pytest.mark.parametrize("who", ["contractor", "reviewer"])
def test_only_admins_get_payouts(client, request, who):
    client.force_login(request.getfixturevalue(who))
    response = client.get(
        reverse("reviews:payouts"), {"format": "csv", "start": "2024-03-01", "end": "2024-03-31"}
    )
    assert response.status_code == 403


# Reviewer metrics ---------------------------------------------------------------------------


def claim_then_decide(task: Task, *, reviewer, claimed: datetime, seconds: int, decision: str):
    """Claim at `claimed`, decide `seconds` later, with the clock standing still in between."""
    from reviews.claim_services import review_claim

    with time_machine.travel(claimed, tick=False) as traveller:
        review_claim(task=task, reviewer=reviewer)
        traveller.shift(timedelta(seconds=seconds))
        return review_decide(
            task=task,
            reviewer=reviewer,
            decision=decision,
            feedback="Needs work." if decision == "BOUNCE" else "",
        )


def test_reviewer_metrics_from_claim_to_decision(ready_repository, project, contractor, reviewer):
    rex = UserFactory(username="rex", role=roles.REVIEWER)
    plan = [
        (reviewer, at(2024, 3, 4, 9), 600, "ACCEPT"),
        (reviewer, at(2024, 3, 4, 10), 900, "BOUNCE"),
        (reviewer, at(2024, 3, 20, 14), 3000, "ACCEPT"),
        (rex, at(2024, 3, 6, 8), 300, "BOUNCE"),
        (rex, at(2024, 3, 7, 8), 900, "ACCEPT"),
        # Outside March: must not move any figure.
        (reviewer, at(2024, 4, 2, 9), 30, "BOUNCE"),
        (rex, at(2024, 2, 28, 9), 3000, "BOUNCE"),
    ]
    for who, claimed, seconds, decision in plan:
        task = submitted_task(contractor=contractor, project=project, repository=ready_repository)
        review = claim_then_decide(
            task, reviewer=who, claimed=claimed, seconds=seconds, decision=decision
        )
        assert (review.created_at - review.claimed_at).total_seconds() == seconds

    metrics = {m.username: m for m in reviewer_metrics(period=MARCH)}

    assert set(metrics) == {"rita", "rex"}
    rita = metrics["rita"]
    assert rita.reviewer_id == reviewer.pk
    assert (rita.decisions, rita.bounces) == (3, 1)
    assert rita.bounce_rate == pytest.approx(1 / 3)
    assert rita.median_seconds_to_decision == 900  # not the mean (1,500)
    assert rita.reviews_per_hour == pytest.approx(2.4)  # 3 decisions in 4,500 s claimed
    rex_metrics = metrics["rex"]
    assert rex_metrics.reviewer_id == rex.pk
    assert (rex_metrics.decisions, rex_metrics.bounces) == (2, 1)
    assert rex_metrics.bounce_rate == 0.5
    assert rex_metrics.median_seconds_to_decision == 600  # the middle of 300 and 900
    assert rex_metrics.reviews_per_hour == pytest.approx(6.0)  # 2 decisions in 1,200 s


def test_reviewer_metrics_of_an_empty_period_are_empty(db):
    assert reviewer_metrics(period=MARCH) == []


def test_reviewer_metrics_api_reports_the_same_figures(
    client, admin_user, ready_repository, project, contractor, reviewer
):
    for claimed, seconds, decision in [
        (at(2024, 3, 4, 9), 240, "BOUNCE"),
        (at(2024, 3, 5, 9), 480, "ACCEPT"),
    ]:
        task = submitted_task(contractor=contractor, project=project, repository=ready_repository)
        claim_then_decide(
            task, reviewer=reviewer, claimed=claimed, seconds=seconds, decision=decision
        )

    client.force_login(admin_user)
    response = client.get(
        reverse("api-reviewer-metrics"), {"start": "2024-03-01", "end": "2024-03-31"}
    )
    assert response.status_code == 200
    assert response.json()["reviewers"] == [
        {
            "reviewer_id": reviewer.pk,
            "username": "rita",
            "decisions": 2,
            "bounce_rate": 0.5,
            "median_seconds_to_decision": 360.0,
            "reviews_per_hour": 10.0,
        }
    ]
    assert Review.objects.filter(reviewer=reviewer).count() == 2
