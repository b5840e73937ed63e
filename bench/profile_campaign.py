"""Profile one campaign of bench/campaign.py in-process: where its wall and CPU time go.

Runs one `campaign._campaign` (the bench's own code, real services, its own database
`pw_bench_campaign_profile`, dropped and created) under pyinstrument and prints the call tree
with the wall and CPU seconds. On a machine shared with other work the wall time is mostly
waiting (for the CPU and for PostgreSQL): compare CPU seconds between versions. This is how the
bench's costs were found: per tick, the outreach stage's fixed queries; per conversion, the
feedback stage's; per daily stopping check, 15,000 Beta draws (now screened).

    python bench/profile_campaign.py --rates 2/5/10                       # 3,000 sends, 30 days, 3 h ticks
    python bench/profile_campaign.py --rates 4/5/6 --sends 5000 --days 50 --tick-hours 24 --until-decided
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import campaign  # the bench beside this file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="2/5/10", choices=list(campaign.RATE_SETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sends", type=int, default=3000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--tick-hours", type=float, default=3.0)
    parser.add_argument("--until-decided", action="store_true", help="end at the stopping rule's first winner")
    args = parser.parse_args()
    from pyinstrument import Profiler

    campaign._setup_django(f"{campaign.DATABASE}_profile")
    profiler = Profiler()
    wall, cpu = time.perf_counter(), time.process_time()
    with profiler:
        result = campaign._campaign(
            campaign.RATE_SETS[args.rates],
            args.seed,
            sends=args.sends,
            days=args.days,
            tick_hours=args.tick_hours,
            until_decided=args.until_decided,
        )
    print(profiler.output_text())
    print(
        f"{result['sends']} sends, decision {result['decision']}: "
        f"{time.perf_counter() - wall:.1f} s wall, {time.process_time() - cpu:.1f} s CPU"
    )


if __name__ == "__main__":
    main()
