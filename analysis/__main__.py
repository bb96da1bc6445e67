from pof.signals import run_entry


def _main():
    from analysis.cli import main

    return main


run_entry(_main)
