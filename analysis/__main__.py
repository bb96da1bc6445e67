import sys

from pof.signals import stop_on_sigterm

stop_on_sigterm()  # from the first instant: a SIGTERM while torch imports exits 3 too
try:
    from analysis.cli import main

    code = main()
except KeyboardInterrupt:  # Ctrl-C or SIGTERM before a command took charge: nothing was started
    print("interrupted", file=sys.stderr)
    code = 3
sys.exit(code)
