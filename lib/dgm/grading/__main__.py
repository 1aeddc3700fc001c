"""``python -m dgm.grading grade [--jobs N] [--cell-timeout S] [--notebook-timeout S] [--memory-mb M]
[--scheduler tcp://HOST:PORT] [--unsafe-no-sandbox]``."""

from __future__ import annotations

import argparse
import sys

from dgm.grading.settings import SETTINGS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dgm.grading", description="autograde grading/submitted/")
    sub = parser.add_subparsers(dest="command", required=True)
    gr = sub.add_parser("grade", help="autograde grading/submitted/, write feedback, grades.csv, report.csv")
    gr.add_argument("--jobs", help=f"students graded at once, or 'auto' (${SETTINGS['jobs'][0]}, default auto)")
    gr.add_argument("--cell-timeout", type=int, help=f"seconds per cell (${SETTINGS['cell_timeout'][0]}, default 120)")
    gr.add_argument("--notebook-timeout", type=int,
                    help=f"seconds per notebook (${SETTINGS['notebook_timeout'][0]}, default 900)")
    gr.add_argument("--memory-mb", type=int,
                    help=f"memory limit per kernel, MiB (${SETTINGS['memory_mb'][0]}, default 4096)")
    gr.add_argument("--scheduler", help="grade on this Dask scheduler, tcp://host:port ($DGM_GRADE_SCHEDULER; "
                    "default: --jobs workers in this process)")
    gr.add_argument("--unsafe-no-sandbox", action="store_true",
                    help="grade even where bubblewrap cannot run (kernels are then NOT confined)")
    args = parser.parse_args(argv)
    from dgm.grading.run import Interrupted, grade

    try:
        grade(jobs=args.jobs, cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout,
              memory_mb=args.memory_mb, unsafe_no_sandbox=args.unsafe_no_sandbox, scheduler=args.scheduler)
    except FileNotFoundError as err:
        print(f"make grade: {err}", file=sys.stderr)
        return 2
    except Interrupted as err:
        print(f"\ngrading interrupted ({err}): every worker and kernel stopped, grading/ left as the last "
              "complete run wrote it; run `make grade` again to grade the class", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
