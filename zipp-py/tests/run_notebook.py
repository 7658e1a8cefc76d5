"""Executes a notebook headlessly (nbclient) in the current interpreter's kernel and fails
if any cell raises; used by scripts/test-python.sh (not a pytest module).

    python run_notebook.py NOTEBOOK EXPECTED_PREFIX

A last cell, added here and never saved, checks that the kernel imported zipp_persona from
under EXPECTED_PREFIX (the test venv), not from the source tree.
"""

import os
import pathlib
import sys
import tempfile

import nbclient
import nbformat
from jupyter_client.manager import KernelManager


def main() -> int:
    path, prefix = pathlib.Path(sys.argv[1]).resolve(), sys.argv[2]
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import zipp_persona\nprint(zipp_persona.__file__)"))
    # A local socket, not TCP: no port to open and nothing on the network. The notebook's
    # own folder is the kernel's working directory (its data paths are relative to it).
    with tempfile.TemporaryDirectory() as sockets:
        km = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel"))
        client = nbclient.NotebookClient(nb, km=km, timeout=600, resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute()
        finally:
            # nbclient leaves a kernel it was handed running; stop it before its sockets go.
            if km.has_kernel:
                km.shutdown_kernel()
    where = nb.cells[-1].outputs[0]["text"].strip()
    if not where.startswith(prefix):
        print(f"run_notebook: the kernel imported zipp_persona from {where}, not from under {prefix}", file=sys.stderr)
        return 1
    print(f"run_notebook: {path.name}: {len(nb.cells) - 1} cells ran without error")
    return 0


if __name__ == "__main__":
    sys.exit(main())
