"""Scripts that do something while another thread of their process sits in BLAS (matrix products), as the studio
trains V on one thread while another starts a child process. A child started with fork() there runs OpenBLAS's
fork handler, which waits for good on the busy thread; the fork-safety tests run their body in such a script."""
import textwrap

SCRIPT = """
import faulthandler, threading
import numpy as np

def main():
    faulthandler.dump_traceback_later({dump_after}, exit=True)   # a hang prints every thread's stack and ends
    stop = threading.Event()

    def products():
        a = np.random.default_rng(0).standard_normal((600, 600))
        while not stop.is_set():
            a @ a.T

    thread = threading.Thread(target=products)
    thread.start()
    try:
{body}
    finally:
        stop.set()
        thread.join()
    print("joined", flush=True)

if __name__ == "__main__":   # spawned children import this module again
    main()
"""


def beside_blas(body: str, dump_after: float) -> str:
    """The script that runs `body` (a block of statements) while the BLAS thread works, then prints "joined"."""
    return SCRIPT.format(dump_after=dump_after, body=textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8))
