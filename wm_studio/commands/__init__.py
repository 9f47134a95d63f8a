"""Sub-commands of `wm-studio`, one module per group; each module has register(subparsers).

A handler gets the parsed arguments and returns an exit code. It raises WmStudioError for anything the user
must fix: the CLI prints the message alone, without a traceback.
"""
from wm_studio.commands import es, gui
from wm_studio.commands import collect
from wm_studio.commands import dream, mdn
from wm_studio.commands import vae
from wm_studio.commands import controller, evaluate, pipeline
from wm_studio.commands import desktop

COMMAND_MODULES = [gui, es, collect, mdn, dream, vae, controller, evaluate, pipeline, desktop]
