"""The staff console's command forms, generated from the command models, without servers.

Every staff command gets a form that covers its request model; what the form shows of a
body reads back to the same body; local times are read in the clinic's zone across a
change of the clocks; messages land on the fields they are about; a role sees the
commands the role matrix gives it; and the macro labels every input.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import pytest
from starlette.datastructures import FormData

from api.command_specs import CommandSpec, command_specs
from api.console.form_fields import field_type
from api.console.forms import (
    FORM,
    CommandForm,
    FormErrors,
    FormGroup,
    FormInvalid,
    actions_for,
    bind,
    form_for,
    forms_for,
    from_local,
    initial_values,
    parse_form,
    refusal_errors,
    to_local,
    values_from,
)
from domain.actors import Role
from domain.asam import MERGED_LEVELS
from domain.errors import ReasonRequired, ScheduleOutsideIntensityBounds
from domain.roles import allowed_roles
from workflows.client import CommandRejected

NEW_YORK = ZoneInfo("America/New_York")
TEMPLATES = Path(__file__).resolve().parents[2] / "api" / "console" / "templates"
SPECS = command_specs()
KINDS = [spec.kind for spec in SPECS]


def _json(spec: CommandSpec, body: Any) -> dict[str, Any]:
    model = body if not isinstance(body, dict) else spec.request_model.model_validate(body)
    return model.model_dump(mode="json")


def _invalid(form: CommandForm, data: dict[str, Any], zone: ZoneInfo = NEW_YORK) -> FormErrors:
    with pytest.raises(FormInvalid) as caught:
        parse_form(form, data, zone)
    return caught.value.errors


# --- the fields cover the model ----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_given_a_staff_command_when_its_form_is_built_then_its_fields_cover_its_request_model(
    kind: str,
) -> None:
    form = form_for(kind)
    spec = form.spec
    names = [f.name for f in form.fields]
    assert len(names) == len(set(names))
    top = {name.split(".")[0] for name in names if not form.field(name).in_path}
    assert top == set(spec.request_model.model_fields)
    assert [f.name for f in form.fields if f.in_path] == list(spec.path_params)
    for f in form.fields:
        assert f.label
        assert f.label[0].isupper()
        path = f.path
        model: Any = spec.command if f.in_path else spec.request_model
        for part in path[:-1]:
            model = field_type(model.model_fields[part].annotation).tp
        info = model.model_fields[path[-1]]
        tp = field_type(info.annotation).tp
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            assert f.kind == "select"
            assert {o.value for o in f.options} == {m.value for m in tp} - {
                m.value for m in MERGED_LEVELS
            }
        if tp is datetime:
            assert f.kind == "datetime-local"
        if f.kind != "checkbox":
            assert f.required == info.is_required()


def test_given_the_treatment_plan_when_its_form_is_built_then_the_plan_is_flattened_and_lists_of_models_are_json() -> (
    None
):
    form = form_for("record_treatment_plan")
    kinds = {f.name: f.kind for f in form.fields}
    assert kinds == {
        "plan.problems": "json",
        "plan.goals": "json",
        "plan.modalities": "checkboxes",
        "plan.weekly_schedule": "json",
        "plan.care_team": "json",
        "plan.primary_clinician": "text",
        "reason": "textarea",
    }
    group = form.items[0]
    assert isinstance(group, FormGroup)
    assert group.legend == "Plan"
    assert "care team" in (group.help or "")
    # The JSON fields start from the command's example.
    initial = initial_values(form)
    assert isinstance(initial["plan.care_team"], str)
    assert '"cal.clinician"' in initial["plan.care_team"]


def test_given_command_fields_when_labelled_then_labels_are_words_and_help_comes_from_the_model() -> (
    None
):
    schedule = form_for("schedule_session")
    assert schedule.field("starts_at").label == "Starts at"
    assert schedule.field("session_id").label == "Session ID"
    assert schedule.field("hours").kind == "number"
    assert schedule.field("hours").step == "any"
    assert schedule.field("hours").max == "12"
    assert schedule.field("kind").options[0].label == "Individual"
    authorization = form_for("record_authorization")
    assert authorization.field("units").help == "Authorized sessions."
    assert authorization.field("units").step == "1"
    assert authorization.field("level_of_care").default == "iop"
    iop = next(o for o in authorization.field("level_of_care").options if o.value == "iop")
    assert iop.label == "Level 2.1: Intensive outpatient"
    assessment = form_for("record_assessment")
    assert assessment.field("asam_ratings.biomedical").kind == "number"
    assert "Dimension 2" in (assessment.field("asam_ratings.biomedical").help or "")
    assert assessment.field("diagnoses").kind == "lines"
    assert form_for("record_consent").field("scopes").kind == "checkboxes"
    assert form_for("step_up").field("intent_to_return").kind == "checkbox"
    assert form_for("resolve_task").field("outcome").kind == "textarea"
    # Every form ends with the optional reason.
    assert all(form_for(k).fields[-1].name == "reason" for k in KINDS)


# --- round trip -------------------------------------------------------------------------


@pytest.mark.parametrize("zone", [ZoneInfo("UTC"), NEW_YORK], ids=["utc", "new-york"])
@pytest.mark.parametrize("kind", KINDS)
def test_given_a_command_example_when_shown_as_form_values_and_read_back_then_it_is_the_example(
    kind: str, zone: ZoneInfo
) -> None:
    form = form_for(kind)
    spec = form.spec
    values = values_from(form, spec.example, zone)
    assert all(isinstance(v, str | list) for v in values.values())

    submission = parse_form(form, values, zone)

    assert _json(spec, submission.body) == _json(spec, spec.body_example)
    assert submission.path == spec.path_example


def test_given_browser_form_data_when_read_then_repeated_names_and_crlf_text_are_kept() -> None:
    form = form_for("record_consent")
    data = FormData(
        [
            ("csrf_token", "t"),
            ("idempotency_key", "k"),
            ("consent_id", " c-1 "),
            ("recipient_ref", "family-contact-1"),
            ("recipient_kind", "family"),
            ("scopes", "attendance"),
            ("scopes", "appointments"),
            ("expires_at", "2026-12-31T18:00"),
            ("reason", "signed in clinic\r\nsecond line"),
        ]
    )

    body = parse_form(form, data, NEW_YORK).body.model_dump(mode="json")

    assert body["consent_id"] == "c-1"
    assert body["scopes"] == ["attendance", "appointments"]
    assert body["expires_at"] == "2026-12-31T23:00:00Z"
    assert body["reason"] == "signed in clinic\nsecond line"


def test_given_empty_optional_inputs_when_read_then_they_are_left_to_the_model_defaults() -> None:
    form = form_for("reschedule_session")

    submission = parse_form(
        form,
        {"session_id": "s-1", "starts_at": "2026-01-06T10:00", "hours": "", "reason": ""},
        NEW_YORK,
    )

    assert submission.body.model_dump(exclude_unset=True) == {
        "starts_at": datetime(2026, 1, 6, 15, tzinfo=UTC)
    }
    assert submission.path == {"session_id": "s-1"}


def test_given_an_unticked_checkbox_when_read_then_it_is_no() -> None:
    submission = parse_form(form_for("step_up"), {"to_level": "php"}, NEW_YORK)

    assert submission.body.model_dump(include={"intent_to_return"}) == {"intent_to_return": False}


# --- local time across a change of the clocks -----------------------------------------


def test_given_new_york_times_either_side_of_the_spring_change_when_read_then_each_has_its_offset() -> (
    None
):
    # The clocks went forward at 02:00 on Sunday 8 March 2026.
    assert from_local("2026-03-07T10:00", NEW_YORK) == datetime(2026, 3, 7, 15, tzinfo=UTC)
    assert from_local("2026-03-09T10:00", NEW_YORK) == datetime(2026, 3, 9, 14, tzinfo=UTC)
    assert to_local(datetime(2026, 3, 7, 15, tzinfo=UTC), NEW_YORK) == "2026-03-07T10:00"
    assert to_local("2026-03-09T14:00:00Z", NEW_YORK) == "2026-03-09T10:00"


def test_given_a_session_at_ten_across_the_spring_change_when_scheduled_then_both_start_at_ten_local() -> (
    None
):
    form = form_for("schedule_session")
    starts = []
    for day in ("2026-03-06", "2026-03-09"):
        body = parse_form(
            form,
            {
                "session_id": f"s-{day}",
                "kind": "group_skills",
                "starts_at": f"{day}T10:00",
                "hours": "3",
            },
            NEW_YORK,
        ).body
        starts.append(body.model_dump()["starts_at"])

    assert [s.hour for s in starts] == [15, 14]
    assert [to_local(s, NEW_YORK)[-5:] for s in starts] == ["10:00", "10:00"]


def test_given_a_local_time_the_clocks_skip_when_submitted_then_it_is_refused_at_its_field() -> (
    None
):
    errors = _invalid(
        form_for("schedule_session"),
        {
            "session_id": "s-1",
            "kind": "group_skills",
            "starts_at": "2026-03-08T02:30",
            "hours": "3",
        },
    )

    assert list(errors) == ["starts_at"]
    assert "does not exist in America/New_York" in errors["starts_at"][0]


def test_given_a_local_time_that_occurs_twice_in_autumn_when_read_then_it_is_the_first_occurrence() -> (
    None
):
    # The clocks went back at 02:00 on Sunday 1 November 2026: 01:30 happened twice.
    assert from_local("2026-11-01T01:30", NEW_YORK) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert from_local("2026-11-01", NEW_YORK) == datetime(2026, 11, 1, 4, tzinfo=UTC)


# --- messages by field ----------------------------------------------------------------


def test_given_an_invalid_form_when_read_then_each_message_is_keyed_by_its_field() -> None:
    errors = _invalid(
        form_for("schedule_session"),
        {"session_id": "", "kind": "", "starts_at": "soon", "hours": "13"},
    )

    assert set(errors) == {"session_id", "kind", "starts_at", "hours"}
    assert errors["kind"] == ["Choose one."]
    assert errors["session_id"] == ["Enter a value."]
    assert errors["starts_at"] == ["Enter a date and time, e.g. 2026-01-05 10:00."]
    assert errors["hours"] == ["Input should be less than or equal to 12."]


def test_given_a_path_field_left_empty_when_read_then_the_message_is_at_that_field() -> None:
    errors = _invalid(form_for("record_attendance"), {"status": "attended"})

    assert errors == {"session_id": ["Enter a value."]}


def test_given_invalid_nested_values_when_read_then_messages_name_the_sub_field_and_item() -> None:
    assessment = form_for("record_assessment")
    values = values_from(assessment, assessment.spec.example, NEW_YORK)
    values["asam_ratings.biomedical"] = "7"
    values["diagnoses"] = ""
    errors = _invalid(assessment, values)
    assert set(errors) == {"asam_ratings.biomedical", "diagnoses"}

    plan = form_for("record_treatment_plan")
    values = values_from(plan, plan.spec.example, NEW_YORK)
    values["plan.problems"] = '[{"problem_id": "p1"}]'
    values["plan.care_team"] = "[{"
    values["plan.modalities"] = []
    errors = _invalid(plan, values)
    assert errors["plan.problems"] == ["Item 1, description: this is required."]
    assert errors["plan.care_team"][0].startswith("Not valid JSON (line 1, column 3)")
    assert errors["plan.modalities"] == ["Choose at least one."]


def test_given_a_plan_refused_for_its_schedule_and_team_when_shown_then_each_rule_is_at_its_field() -> (
    None
):
    form = form_for("record_treatment_plan")
    refusal = ScheduleOutsideIntensityBounds(
        "the plan breaks 2 rules",
        errors=(
            {"rule": "weekly_hours", "actual": 6, "min": 9, "max": 19, "message": "totals 6 h"},
            {"rule": "primary_clinician_on_team", "message": "not on the care team"},
            {"rule": "a_rule_of_tomorrow", "message": "something else"},
        ),
    )

    assert refusal_errors(form, refusal) == {
        "plan.weekly_schedule": ["Totals 6 h."],
        "plan.primary_clinician": ["Not on the care team."],
        FORM: ["Something else."],
    }


def test_given_refusals_that_name_no_field_when_shown_then_their_type_says_which_field() -> None:
    overlap = CommandRejected("SessionOverlap", "overlaps s-2 (10:00-13:00): choose another time")
    assert refusal_errors(form_for("schedule_session"), overlap) == {
        "starts_at": ["Overlaps s-2 (10:00-13:00): choose another time."]
    }
    early = ReasonRequired("give a reason to advance before day 14")
    assert refusal_errors(form_for("advance_phase"), early) == {
        "reason": ["Give a reason to advance before day 14."]
    }
    named = CommandRejected(
        "InvalidCommand", "bad", errors=({"field": "hours", "message": "too long"},)
    )
    assert refusal_errors(form_for("record_attendance"), named) == {"hours": ["Too long."]}
    by_loc = CommandRejected(
        "ValidationFailed", "bad", errors=({"loc": ["body", "plan", "goals", 0], "message": "x"},)
    )
    assert refusal_errors(form_for("record_treatment_plan"), by_loc) == {"plan.goals": ["X."]}
    closed = CommandRejected("EpisodeClosed", "episode 'e-1' is closed")
    assert refusal_errors(form_for("record_attendance"), closed) == {
        FORM: ["Episode 'e-1' is closed."]
    }


# --- the role matrix ------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_given_a_role_when_its_actions_are_listed_then_they_are_those_the_role_matrix_allows_in_order(
    role: Role,
) -> None:
    actions = actions_for(role)

    assert {s.kind for s in actions} == {s.kind for s in SPECS if role in allowed_roles(s.kind)}
    assert [s.kind for s in actions] == [k for k in KINDS if k in {s.kind for s in actions}]
    assert actions_for(role.value) == actions
    assert [f.kind for f in forms_for(role)] == [s.kind for s in actions]


def test_given_the_role_matrix_then_a_clinician_has_no_discharge_and_an_auditor_no_action() -> None:
    clinician = {s.kind for s in actions_for(Role.CLINICIAN)}
    supervisor = {s.kind for s in actions_for(Role.SUPERVISOR)}

    assert "record_attendance" in clinician
    assert "discharge" not in clinician
    assert "discharge" in supervisor
    assert actions_for(Role.AUDITOR) == ()
    assert actions_for(Role.SYSTEM) == ()


# --- the macro ------------------------------------------------------------------------


class _Page(HTMLParser):
    """The elements of a rendered form, by tag, with their attributes and texts."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.label_text: dict[str, str] = {}
        self.button_text = ""
        self._open: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag in ("label", "button"):
            self._open.append((tag, dict(attrs).get("for")))

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for tag, target in self._open:
            if tag == "label" and target:
                self.label_text[target] = self.label_text.get(target, "") + data
            if tag == "button":
                self.button_text += data

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for t, attrs in self.elements if t == tag]


@pytest.fixture(scope="module")
def macro() -> Any:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("_form.html").module.command_form  # type: ignore[attr-defined]


def _render(macro: Any, bound: Any, key: str = "key-1") -> _Page:
    html = str(macro(bound, "/console/act", "csrf-123", key))
    page = _Page()
    page.feed(html)
    # Nothing a strict Content-Security-Policy would block: no inline style or script.
    assert not page.all("script")
    assert not page.all("style")
    assert not [
        a for _, attrs in page.elements for a in attrs if a == "style" or a.startswith("on")
    ]
    return page


def _every_error(form: CommandForm) -> FormErrors:
    return {f.name: [f"{f.label} is wrong."] for f in form.fields} | {FORM: ["Refused."]}


@pytest.mark.parametrize("kind", KINDS)
def test_given_any_command_form_when_rendered_then_every_input_has_a_label_and_its_notes_exist(
    macro: Any, kind: str
) -> None:
    form = form_for(kind)
    page = _render(macro, bind(form, errors=_every_error(form), zone=NEW_YORK))

    ids = [attrs["id"] for _, attrs in page.elements if attrs.get("id")]
    assert len(ids) == len(set(ids))
    labelled = {attrs["for"] for attrs in page.all("label")}
    controls = [
        attrs
        for tag, attrs in page.elements
        if tag in ("select", "textarea") or (tag == "input" and attrs.get("type") != "hidden")
    ]
    assert len(controls) >= len(form.fields)
    names = {attrs["name"] for attrs in controls}
    assert names == {f.name for f in form.fields}
    for control in controls:
        assert control["id"] in labelled
        assert page.label_text[str(control["id"])].strip()
        assert control.get("aria-invalid") == "true"
        for described in (control.get("aria-describedby") or "").split():
            assert described in ids
    hidden = {a["name"]: a["value"] for a in page.all("input") if a.get("type") == "hidden"}
    assert hidden == {"csrf_token": "csrf-123", "idempotency_key": "key-1"}
    (button,) = page.all("button")
    assert button == {"type": "submit", "name": "command", "value": kind}
    assert page.button_text.strip() == form.title
    summary_links = [a["href"] for a in page.all("a")]
    assert summary_links
    assert all(str(href)[1:] in ids for href in summary_links)


def test_given_a_fresh_render_when_each_is_made_then_the_idempotency_key_is_the_one_passed_in(
    macro: Any,
) -> None:
    bound = bind(form_for("record_attendance"))
    keys = []
    for key in ("k-1", "k-2"):
        page = _render(macro, bound, key)
        keys += [a["value"] for a in page.all("input") if a.get("name") == "idempotency_key"]

    assert keys == ["k-1", "k-2"]


def test_given_a_fixed_session_and_task_choices_when_rendered_then_they_are_hidden_and_a_select(
    macro: Any,
) -> None:
    attendance = bind(
        form_for("record_attendance"), fixed={"session_id": "s-1"}, id_prefix="row-1-attendance"
    )
    page = _render(macro, attendance)
    hidden = {a["name"]: a["value"] for a in page.all("input") if a.get("type") == "hidden"}
    assert hidden["session_id"] == "s-1"
    assert all(str(a.get("id")).startswith("row-1-attendance") for a in page.all("select"))
    assert not page.all("a")  # no error summary without errors

    resolve = bind(form_for("resolve_task"), choices={"task_id": [("t-1", "Outreach, due today")]})
    page = _render(macro, resolve)
    (select,) = page.all("select")
    assert select["name"] == "task_id"
    options = [a["value"] for a in page.all("option")]
    assert options == ["", "t-1"]


def test_given_a_submitted_form_refused_when_shown_again_then_values_are_kept_and_the_message_is_next_to_the_field(
    macro: Any,
) -> None:
    form = form_for("record_consent")
    data = FormData(
        [("consent_id", "c-9"), ("scopes", "diagnosis"), ("expires_at", "2026-12-31T18:00:30")]
    )
    errors = _invalid(form, dict(data.multi_items()) | {"scopes": ["diagnosis"]})

    page = _render(macro, bind(form, values=data, errors=errors, zone=NEW_YORK))

    inputs = {a.get("name"): a for a in page.all("input")}
    assert inputs["consent_id"]["value"] == "c-9"
    assert "aria-invalid" not in inputs["consent_id"]
    assert inputs["expires_at"]["step"] == "1"
    assert inputs["recipient_ref"]["aria-invalid"] == "true"
    ticked = [a["value"] for a in page.all("input") if a.get("name") == "scopes" and "checked" in a]
    assert ticked == ["diagnosis"]
    errors_shown = [a["id"] for a in page.all("p") if "field-error" in str(a.get("class"))]
    assert "record-consent-f-recipient-ref-error" in errors_shown
