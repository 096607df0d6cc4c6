"""`carepath simulate`: a synthetic cohort through the real workflow, decider, activities
and event store on the time-skipping test server, and what-if between two programs
(simulation/, docs/simulation.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(rich_markup_mode="rich", context_settings={"help_option_names": ["-h", "--help"]})

DEFAULT_OUT = Path("simulation-out")


@app.command("simulate")
def simulate(
    program: Annotated[
        str, typer.Option(help="a built-in program's id, or a program file")
    ] = "adult-iop",
    episodes: Annotated[int, typer.Option(min=1, help="synthetic clients")] = 200,
    weeks: Annotated[int, typer.Option(min=1, help="program weeks per episode")] = 12,
    seed: Annotated[int, typer.Option(help="the same seed gives the same clients and results")] = 7,
    cohort: Annotated[
        Path | None,
        typer.Option(help="cohort model (YAML); default: the shipped one", dir_okay=False),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="where the CSV, JSON (and with --plot, PNG) files go")
    ] = DEFAULT_OUT,
    plot: Annotated[bool, typer.Option(help="also write PNG charts")] = False,
    compare: Annotated[
        tuple[Path, Path] | None,
        typer.Option(
            metavar="A.yaml B.yaml",
            help="run the same clients under two program files; each measure side by side "
            "with the difference and a bootstrap 95 % interval",
        ),
    ] = None,
) -> int:
    """Run a synthetic cohort and report quality measures, staff load and Temporal figures.

    Example: carepath simulate --episodes 200 --seed 7 --plot

    What-if: carepath simulate --compare programs/adult-iop.yaml simulation/programs/adult-iop-2noshows.yaml --seed 7
    """
    from simulation.cli import simulate as run_simulation

    return run_simulation(
        program=program,
        episodes=episodes,
        weeks=weeks,
        seed=seed,
        cohort=cohort,
        out=out,
        plot=plot,
        compare=compare,
        quiet_logs=True,
    )
