"""What every script needs before its work: Jittor's environment (``jittor_setup.setup()``,
called first) and the command-line convention (``cli``: exit codes, one-line errors)."""
