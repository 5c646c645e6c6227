"""Reads the event file `descent train --tensorboard DIR --metrics M` wrote with TensorBoard's own
event accumulator and checks its tags, steps and values against the metrics file: proof that
real TensorBoard reads what descent writes."""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

run_dir, metrics_path, steps_per_epoch = sys.argv[1], sys.argv[2], int(sys.argv[3])
acc = EventAccumulator(run_dir)
acc.Reload()
tags = sorted(acc.Tags()["scalars"])
per_epoch = {
    "train/loss": "train_loss",
    "test/loss": "test_loss",
    "test/accuracy": "test_accuracy",
    "val/loss": "val_loss",
    "val/accuracy": "val_accuracy",
    "samples_per_second": "samples_per_second",
}
want = sorted(list(per_epoch) + ["lr", "train/step_loss"])
assert tags == want, f"tags {tags}, expected {want}"
rows = [json.loads(line) for line in open(metrics_path) if line.strip()]
for tag, key in per_epoch.items():
    events = acc.Scalars(tag)
    steps = [ev.step for ev in events]
    assert steps == [steps_per_epoch * r["epoch"] for r in rows], f"{tag}: steps {steps}"
    for r, ev in zip(rows, events):
        assert abs(ev.value - r[key]) <= 1e-6 * max(1.0, abs(r[key])), f"{tag} step {ev.step}: {ev.value} vs {r[key]}"
step_losses = acc.Scalars("train/step_loss")
assert len(step_losses) >= len(rows), f"{len(step_losses)} per-step losses"
print(f"tensorboard read {len(tags)} tags back as written ({len(rows)} epochs, {len(step_losses)} logged steps)")
