from .signals import run_entry


def _main():
    from .cli import main

    return main


run_entry(_main)
