"""``yolohub env``: the machine, MindSpore's set-up and whether convolutions run at full speed."""

from __future__ import annotations

import argparse

from hub.cli.common import add_json_option, print_json


def register(sub) -> None:
    """Add ``env`` to the yolohub parser."""
    p = sub.add_parser(
        "env",
        help="report the CPU, MindSpore, oneDNN's ISA and a measured convolution speed",
        description="Report the CPU and its vector extensions, the MindSpore and NumPy versions, "
        "the oneDNN ISA cap (ONEDNN_MAX_CPU_ISA) and who set it, the ISA and convolution kernel "
        "oneDNN picks, and a probe convolution's speed against NumPy's matmul. Exit code 1 when "
        "convolutions run orders of magnitude below the machine's speed.",
    )
    p.add_argument("--no-measure", action="store_true",
                   help="skip the timed probe (the kernel check in a child process still runs)")
    add_json_option(p)
    p.set_defaults(func=run_env)


def run_env(args: argparse.Namespace) -> int:
    from hub.tasks.environment import check_environment

    report = check_environment(measure=not args.no_measure)
    if args.json:
        print_json(report.to_dict())
        return 0 if report.ok else 1
    speed = "not measured"
    if report.conv_gflops is not None:
        share = report.conv_gflops / report.matmul_gflops if report.matmul_gflops else 0.0
        speed = (f"{report.conv_gflops:.1f} GFLOPS (NumPy matmul {report.matmul_gflops:.1f} "
                 f"GFLOPS, {share:.0%} of it)")
    rows = [
        ("python", report.python),
        ("platform", report.platform),
        ("cpu", f"{report.cpu} ({report.cores} cores; {' '.join(report.cpu_flags) or '?'})"),
        ("mindspore", report.mindspore or "not installed"),
        ("numpy", report.numpy or "not installed"),
        ("isa cap", f"{report.isa_cap or 'none'} ({report.isa_cap_source})"),
        ("onednn isa", report.onednn_isa or "unknown"),
        ("conv kernel", report.conv_kernel or "unknown"),
        ("conv speed", speed),
        ("verdict", "fast path" if report.ok else "SLOW: convolutions use oneDNN's reference kernel"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if report.advice:
        print(f"warning: {report.advice}")
    return 0 if report.ok else 1
