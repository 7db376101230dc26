"""`python -m dydet ...`: the `dydet` command, also as a module (as `torchrun -m dydet train ...` launches it)."""

from dydet.cli import entrypoint

if __name__ == "__main__":
    entrypoint()
