"""Run `mirastral ARGS...` with a SIGKILL planted at a named point of training, for the kill -9 tests.

    python tests/killpoint.py POINT STEP -- ARGS...

POINT is where the process kills itself (no timers, no sleeps: the point is reached whatever the machine's speed):
- `checkpoint`: while checkpoint-STEP is written, after its adapter weights and before its optimizer, scheduler,
  RNG states and trainer_state.json (transformers writes trainer_state.json last);
- `trainer_state`: half-way through writing checkpoint-STEP's trainer_state.json;
- `final`: when final_model/ is complete in its temporary folder, just before it is renamed into place (STEP unused).
"""

import os, pathlib, signal, sys


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def plant(point: str, step: int):
    from transformers import Trainer, TrainerState

    if point == 'checkpoint':
        save = Trainer._save_optimizer_and_scheduler

        def patched(self, output_dir):
            if self.state.global_step == step:
                die()
            return save(self, output_dir)

        Trainer._save_optimizer_and_scheduler = patched
    elif point == 'trainer_state':
        save = TrainerState.save_to_json

        def patched(self, json_path):
            if self.global_step != step:
                return save(self, json_path)
            text = self.to_json_string() if hasattr(self, 'to_json_string') else '{"global_step": %d, "log_hi' % step
            with open(json_path, 'w') as f:
                f.write(text[: len(text) // 2])
                f.flush()
            die()

        TrainerState.save_to_json = patched
    elif point == 'final':
        rename = pathlib.Path.rename

        def patched(self, target):
            if pathlib.Path(target).name == 'final_model' and self.name.startswith('.final_model.tmp-'):
                die()
            return rename(self, target)

        pathlib.Path.rename = patched
    else:
        sys.exit(f'unknown kill point {point!r}')


if __name__ == '__main__':
    point, step, sep, *args = sys.argv[1:]
    assert sep == '--', __doc__
    plant(point, int(step))
    from mirastral.cli import main

    sys.exit(main(args))
