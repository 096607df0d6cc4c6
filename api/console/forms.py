"""Forms generated from the staff commands' models, and which of them a role sees.

The console's pages show a command as a form and post it back; everything about that
form comes from the command's model and its spec (`api.command_specs`): the inputs
(`form_fields`), reading a submission back into a command body in the clinic's local
time (`form_values`), messages next to the fields they are about, from the model's
validation or the domain's refusal (`form_errors`), and the form as rendered
(`form_render`, for the `command_form` macro of `templates/_form.html`). A page:

    form = form_for("record_attendance")
    data = await request.form()
    try:
        submission = parse_form(form, data, zone)
        command = form.spec.build(data["idempotency_key"], actor, submission.body, submission.path)
        await episodes.send(episode_id, command, programs=...)
    except FormInvalid as err:
        shown = bind(form, values=data, errors=err.errors, zone=zone)  # answer 422
    except CommandRejected as refusal:
        shown = bind(form, values=data, errors=refusal_errors(form, refusal), zone=zone)

A fresh form is `bind(form, zone=zone)` (or `values=values_from(form, body, zone)` to
show a body), rendered with a new idempotency key each time, so that a form submitted
twice is applied once.
"""

from __future__ import annotations

from api.command_specs import CommandSpec, command_specs
from api.console.form_errors import (
    FORM,
    FormErrors,
    FormInvalid,
    refusal_errors,
    validation_errors,
)
from api.console.form_fields import (
    CommandForm,
    FormField,
    FormGroup,
    Option,
    form_for,
    humanise,
    option_label,
)
from api.console.form_render import BoundField, BoundForm, BoundGroup, bind
from api.console.form_values import (
    FormValues,
    Submission,
    from_local,
    initial_values,
    parse_form,
    to_local,
    values_from,
)
from domain.actors import Role

__all__ = [
    "FORM",
    "BoundField",
    "BoundForm",
    "BoundGroup",
    "CommandForm",
    "FormErrors",
    "FormField",
    "FormGroup",
    "FormInvalid",
    "FormValues",
    "Option",
    "Submission",
    "actions_for",
    "bind",
    "form_for",
    "forms_for",
    "from_local",
    "humanise",
    "initial_values",
    "option_label",
    "parse_form",
    "refusal_errors",
    "to_local",
    "validation_errors",
    "values_from",
]


def actions_for(role: Role | str) -> tuple[CommandSpec, ...]:
    """The staff commands `role` may issue (the role matrix), in the registry's order."""
    wanted = Role(role)
    return tuple(spec for spec in command_specs() if wanted in spec.roles)


def forms_for(role: Role | str) -> tuple[CommandForm, ...]:
    """The forms of the commands `role` may issue, in the registry's order."""
    return tuple(form_for(spec.kind) for spec in actions_for(role))
