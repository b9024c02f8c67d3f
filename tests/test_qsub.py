"""`qsub hpc/run_finetune.sh` on a real Grid Engine (Debian's gridengine 8.1.9, started on this machine by
hpc/local_gridengine.sh): the job is warned mid-training by the scheduler, checkpoints, exits 99, is requeued and
resumes.

What must happen: Grid Engine sends the job SIGUSR1 (with `-notify`, it does so before it suspends a job, as it does at
a soft walltime limit); the job script forwards it to the training kernel, which saves a checkpoint and stops; the
script exits 99, so Grid Engine requeues the job (RESTARTED=1); the rerun resumes from the checkpoint and finishes
with one continuous loss curve.

Nothing here is sized in seconds, so a fast or a loaded machine passes alike. The warning is sent at a moment the
test observes: once checkpoint-4 is complete, the training kernel is frozen (SIGSTOP) where it is, mid-run; Grid
Engine is asked to warn the job (`qmod -sj`: SIGUSR1 now, SIGSTOP only after the queue's `notify` time, 10 minutes
here); once the job log shows the script passed the warning on, the kernel is thawed (SIGCONT) and meets it at the
end of its current step. (A soft walltime `s_rt` sends the same SIGUSR1 through the same path, but at a time fixed
when the job starts, which a test cannot align with training on every machine; `qalter` changes it for reruns only.)
Slow (a few minutes): `pytest -m 'not slow'` skips it; CI runs it."""
import json, os, signal, subprocess, sys, time, uuid
from pathlib import Path
import pytest
from mirastral.data import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
SGE = {'SGE_ROOT': '/var/lib/gridengine', 'SGE_CELL': 'default'}
STEPS = 24

@pytest.fixture(scope='module')
def gridengine():
    r = subprocess.run(['bash', str(ROOT/'hpc'/'local_gridengine.sh'), 'start'], capture_output=True, text=True,
                       timeout=900)
    if r.returncode != 0:
        msg = f'could not start a local Grid Engine:\n{r.stdout[-2000:]}{r.stderr[-2000:]}'
        if os.environ.get('CI'): pytest.fail(msg)  # CI has root and Debian's archive: it must work there
        pytest.skip(msg)
    return {**os.environ, **SGE}

def sge(env, *args, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, env=env, check=check)

def wait_for(what:str, ready, job, env, timeout=1800):
    "Poll until `ready()` (an observable event); the timeout only keeps a broken run from hanging CI."
    deadline = time.time() + timeout
    while not ready():
        if time.time() > deadline:
            sge(env, 'qdel', job, check=False)
            raise AssertionError(f'job {job}: no {what} after {timeout} s')
        time.sleep(0.1)

def gone(env, job): return sge(env, 'qstat', '-j', job, check=False).returncode != 0

def training_kernel(tag:str)->int|None:
    "The pid of the job's training kernel (an ipykernel whose environment carries `tag`), or None."
    for p in Path('/proc').iterdir():
        try:
            if not p.name.isdigit() or b'ipykernel' not in (p/'cmdline').read_bytes(): continue
            if tag.encode() in (p/'environ').read_bytes(): return int(p.name)
        except OSError: pass
    return None

def accounting(env, job, timeout=90):
    "One dict per run of the job, from qacct (records land a moment after the job leaves qstat): wait for the last."
    deadline = time.time() + timeout
    while True:
        out = sge(env, 'qacct', '-j', job, check=False).stdout
        runs = [b for b in out.split('=' * 62) if 'exit_status' in b]
        runs = [{l.split()[0]: ' '.join(l.split()[1:]) for l in b.strip().splitlines() if l.strip()} for b in runs]
        if (runs and runs[-1]['exit_status'] != '99') or time.time() > deadline: return runs
        time.sleep(1)

def test_qsub_walltime_warning_checkpoints_requeues_and_resumes(gridengine, demo, tmp_path):
    out, log, tag = tmp_path/'run', tmp_path/'job.log', f'mirastral-qsub-{uuid.uuid4().hex}'
    params = dict(max_train_samples=40, max_eval_samples=6, max_steps=STEPS, save_steps=4, eval_steps=8,
                  logging_steps=1, report_to='none', per_device_train_batch_size=4, lora_dropout=0.0)
    env = {**gridengine, 'OUTPUT_DIR': str(out), 'DATA_DIR': str(demo[1]), 'MIRASTRAL_TEST_TAG': tag,
           'MIRASTRAL_VENV': str(Path(sys.executable).parents[1]),
           'MIRASTRAL_PARAMS': ' '.join(f'-p {k} {v}' for k, v in params.items())}
    # h_rt only as a safety net: nothing in this test depends on how long a step takes.
    job = sge(env, 'qsub', '-terse', '-N', 'mirastral-test', '-o', str(log), '-l', 'h_rt=1:00:00',
              str(ROOT/'hpc'/'run_finetune.sh')).stdout.strip()
    text = lambda: log.read_text() if log.exists() else ''
    first = out/'results'/'checkpoint-4'/'trainer_state.json'
    wait_for('first complete checkpoint', lambda: first.exists() or gone(env, job), job, env)
    kernel = training_kernel(tag)
    assert kernel, 'the training kernel was not found:\n' + text()[-3000:]
    os.kill(kernel, signal.SIGSTOP)                      # training holds where it is: past step 4, far from 24
    try:
        assert not (out/'final_model').exists()
        sge(env, 'qmod', '-sj', job)                     # Grid Engine warns the job: SIGUSR1, as at a soft walltime
        wait_for('forwarded warning', lambda: 'SIGUSR1 received: asking training to checkpoint' in text(), job, env)
    finally:
        os.kill(kernel, signal.SIGCONT)                  # it meets the warning at the end of its current step
    wait_for('requeued run', lambda: '(restarted=1)' in text() or gone(env, job), job, env)
    sge(env, 'qmod', '-usj', job, check=False)           # the job's suspension request is void now; lift it anyway
    wait_for('end of the job', lambda: gone(env, job), job, env)
    runs = accounting(env, job)
    assert len(runs) == 2, (runs, text()[-4000:])       # warned and requeued once, then finished
    assert runs[0]['exit_status'] == '99' and 'rescheduling' in runs[0]['failed'], runs[0]
    assert runs[-1]['exit_status'] == '0' and runs[-1]['failed'].startswith('0'), text()[-4000:]
    assert 'SIGUSR1 received: saving a checkpoint at the end of this step' in text()
    assert '(restarted=1)' in text() and f"resuming from {out/'results'/'checkpoint-'}" in text()
    s = json.loads((out/'final_model'/'training_summary.json').read_text())
    assert s['status'] == 'finished' and s['steps'] == STEPS and s['resumed_from'], s
    assert 4 <= int(s['resumed_from'].rsplit('-', 1)[1]) < STEPS                 # warned mid-training
    losses = {r['step'] for r in read_jsonl(out/'results'/'log.jsonl') if 'loss' in r}
    assert sorted(losses) == list(range(1, STEPS + 1))           # one continuous curve across the runs
    assert len(list((out/'results').glob('03_train.*.ipynb'))) == 2  # each run's executed notebook is kept
