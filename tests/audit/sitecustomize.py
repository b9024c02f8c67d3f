"""Loaded by every Python process started with this folder on PYTHONPATH (tests/test_ddp.py): records each write,
mkdir, rename and delete under $MIRASTRAL_AUDIT_ROOT, one line per event in $MIRASTRAL_AUDIT_DIR/rank<RANK>.log.
Python's audit events see what Python code does; a file written from C++ (torch.save's zip writer, safetensors) is
not seen, but the folder made for it and every JSON/log file are."""
import os, sys

_root, _dir = os.environ.get('MIRASTRAL_AUDIT_ROOT'), os.environ.get('MIRASTRAL_AUDIT_DIR')
if _root and _dir:
    _root = os.path.abspath(_root)
    _log = os.path.join(_dir, f"rank{os.environ.get('RANK', 'none')}.log")
    _fd = os.open(_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def _under_root(p):
        try: return isinstance(p, (str, bytes, os.PathLike)) and os.path.abspath(os.fsdecode(p)).startswith(_root)
        except Exception: return False

    def _hook(event, args):
        if event == 'open':
            path, mode, flags = args
            writes = any(c in mode for c in 'wax+') if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
            paths = [path] if writes else []
        elif event in ('os.mkdir', 'os.remove', 'os.rmdir', 'shutil.rmtree', 'os.truncate'): paths = [args[0]]
        elif event == 'os.rename': paths = [args[0], args[1]]
        else: return
        for p in paths:
            if _under_root(p): os.write(_fd, f"{event} {os.fsdecode(p)}\n".encode())

    sys.addaudithook(_hook)
