"""The outbox against a model: random puts, acks in and out of order, drops and restarts; the
queue on disk must always equal the model's, and every drop must be a record that was queued."""
import random

import pytest

from agent.store.outbox import Outbox


@pytest.mark.parametrize("seed,seg,nseg,max_count", [(1, 512, 4, 1000), (2, 512, 2, 5), (3, 1024, 6, 1000),
                                                      (4, 512, 3, 7)])
def test_outbox_matches_a_model_through_restarts(tmp_path, seed, seg, nseg, max_count):
    rng = random.Random(seed)
    d = str(tmp_path)
    box = Outbox(d, seg * nseg, max_count, segment=seg)
    model, seq, drops = [], 0, 0
    for i in range(600):
        r = rng.random()
        if r < 0.5:
            seq += rng.randint(1, 3)
            for v in box.put(seq, bytes([seq % 256]) * rng.randint(1, 150)):
                assert v in model, (i, v)
                model.remove(v)
                drops += 1
            model.append(seq)
        elif r < 0.8 and model:
            v = model[min(len(model) - 1, int(rng.expovariate(1.0)))]
            assert box.ack(v), (i, v)
            model.remove(v)
        elif r < 0.9:
            box = Outbox(d, seg * nseg, max_count, segment=seg)
        assert box.seqs() == model and box.depth == len(model), i
        assert box.bytes <= seg * nseg
    assert drops > 0
