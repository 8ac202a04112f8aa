"""The `spu` command line: compile and simulate (:mod:`spu_circuits.cli`) and validate
(:mod:`validation.cli`), in one click group.

Every expected failure prints one line (`error: ...`, plus ngspice's log lines for simulator
failures) and exits non-zero; set SPU_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import click

from spu_circuits import cli as spu_cli
from validation.cli import validate_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spu-tngd")
def main() -> None:
    """Compile linear systems A x = b into SPU netlists and check them in ngspice."""


for _name, _cmd in spu_cli.main.commands.items():
    main.add_command(_cmd, _name)
main.add_command(validate_cmd, "validate")

if __name__ == "__main__":  # pragma: no cover
    main()
