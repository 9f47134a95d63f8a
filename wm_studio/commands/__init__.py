"""Sub-commands of `wm-studio`, one module per group; each module has register(subparsers).

A handler gets the parsed arguments and returns an exit code. It raises WmStudioError for anything the user
must fix: the CLI prints the message alone, without a traceback.
"""
from wm_studio.commands import (collect, controller, desktop, dream, dream_check, es, evaluate, gui, mdn,
                                pipeline, tau_table, vae)

# In the order of the help text: the studio, the CMA-ES demo, then the pipeline's steps.
COMMAND_MODULES = [gui, es, collect, vae, mdn, dream, controller, evaluate, tau_table, dream_check,
                   pipeline, desktop]
