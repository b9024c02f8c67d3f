"Faults common to every command: the error style itself."
from . import Case

CASES = [
    Case('cli-unknown-command', lambda c: ['frobnicate'], 2, 'invalid choice'),
    Case('cli-explore-missing-dir', lambda c: ['explore', c.tmp/'nowhere'], 2, 'nowhere'),
    Case('cli-evaluate-missing-run', lambda c: ['evaluate', c.tmp/'nowhere'], 2, 'nowhere'),
]
