"""GuideCache: encode each (guide, text) once, lazily; never use another guide's or a broken cache."""

from __future__ import annotations

import hashlib
import json
import os
import warnings

import numpy as np
import pytest
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer

from core.errors import GistlabError
from core.guides.cache_rows import guide_fingerprint
from core.guides.guide_cache import GuideCache
from core.method.loss import GISTLoss
from core.method.masking import MarginSettings

TEXTS = [f"sentence number {i} about {topic}" for i, topic in enumerate(
    ["dogs", "cats", "cars", "rain", "snow", "trains", "music", "bread", "rivers", "stars"]
)]


class ForwardCounter:
    """Counts the guide's forward passes independently of the cache's own counter."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls = 0
        self.handle = model.register_forward_hook(self._count)

    def _count(self, *_) -> None:
        self.calls += 1


@pytest.fixture(scope="module")
def guide(tiny_model_dir):
    return SentenceTransformer(str(tiny_model_dir), device="cpu")


@pytest.fixture
def counter(guide):
    c = ForwardCounter(guide)
    yield c
    c.handle.remove()


def test_embeddings_are_the_guides_in_order_and_deduplicated(guide, counter, tmp_path):
    cache = GuideCache(guide, "tiny", root=tmp_path, batch_size=4)
    texts = [TEXTS[3], TEXTS[1], TEXTS[3], TEXTS[0], TEXTS[1]]

    got = cache.embed(texts)

    assert cache.texts_encoded == 3 and len(cache) == 3
    assert cache.forward_passes == 1 == counter.calls  # one batch of 3 unique texts
    assert got.dtype == torch.float32 and got.shape == (5, 32)
    torch.testing.assert_close(got, guide.encode(texts, convert_to_tensor=True))
    assert cache.embed([]).shape == (0, 32)


def test_second_run_encodes_nothing(guide, counter, tmp_path):
    first = GuideCache(guide, "tiny", root=tmp_path, batch_size=4)
    want = first.embed(TEXTS)
    assert first.forward_passes == 3 == counter.calls  # 10 texts in batches of 4

    second = GuideCache(guide, "tiny", root=tmp_path, batch_size=4)
    got = second.embed(TEXTS[::-1])

    assert counter.calls == 3 and second.forward_passes == 0 and second.texts_encoded == 0
    torch.testing.assert_close(got, want.flip(0), rtol=0, atol=0)


def test_margin_sweep_and_second_run_do_no_guide_forward_passes(guide, tiny_model_dir, counter, tmp_path):
    student = SentenceTransformer(str(tiny_model_dir), device="cpu")
    ds = Dataset.from_dict({"anchor": TEXTS[:5], "positive": TEXTS[5:], "label": list(range(5))})
    feats = [student.preprocess(ds[c]) for c in ("anchor", "positive")]
    labels = torch.tensor(ds["label"])
    GISTLoss(student, GuideCache(guide, "tiny", root=tmp_path), ds)(feats, labels)
    assert counter.calls == 1

    for margin in (0.0, 0.05, 0.1, -0.1):
        cache = GuideCache(guide, "tiny", root=tmp_path)
        GISTLoss(student, cache, ds, settings=MarginSettings("relative", margin))(feats, labels)
        assert cache.forward_passes == 0
    assert counter.calls == 1


def test_training_fills_only_the_rows_it_uses(guide, tiny_model_dir, tmp_path):
    student = SentenceTransformer(str(tiny_model_dir), device="cpu")
    n = 500
    ds = Dataset.from_dict({
        "anchor": [f"anchor {i}" for i in range(n)],
        "positive": [f"positive {i}" for i in range(n)],
        "negative": [f"negative {i}" for i in range(n)],
        "label": list(range(n)),
    })
    cache = GuideCache(guide, "tiny", root=tmp_path)
    loss = GISTLoss(student, cache, ds)
    batch = ds.select([17, 230, 499])
    loss([student.preprocess(batch[c]) for c in ("anchor", "positive", "negative")],
         torch.tensor(batch["label"]))

    assert cache.texts_encoded == 9 and len(cache) == 9
    assert all(t in cache for c in ("anchor", "positive", "negative") for t in batch[c])
    assert "anchor 18" not in cache


def test_another_guide_never_reads_this_cache(guide, tiny_model_dir, tmp_path):
    GuideCache(guide, "tiny", root=tmp_path).embed(TEXTS)
    other = SentenceTransformer(str(tiny_model_dir), device="cpu")
    with torch.no_grad():
        other[0].auto_model.embeddings.word_embeddings.weight[5] += 1.0  # one row of one matrix
    shorter = SentenceTransformer(str(tiny_model_dir), device="cpu")
    shorter.max_seq_length = 16

    for model in (other, shorter):
        cache = GuideCache(model, "tiny", root=tmp_path)
        assert cache.fingerprint != guide_fingerprint(guide)
        assert len(cache) == 0
        cache.embed(TEXTS)
        assert cache.texts_encoded == len(TEXTS)
    assert len(list(tmp_path.iterdir())) == 3
    assert GuideCache(guide, "renamed spec", root=tmp_path).fingerprint == guide_fingerprint(guide)


def _truncate_array(folder):
    path = folder / "embeddings.f32"
    path.write_bytes(path.read_bytes()[:-7])


def _drop_last_row(folder):
    path = folder / "embeddings.f32"
    path.write_bytes(path.read_bytes()[: -32 * 4])


def _flip_index_byte(folder):
    path = folder / "index.bin"
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate_index(folder):
    path = folder / "index.bin"
    path.write_bytes(path.read_bytes()[:-16])


def _garbage_meta(folder):
    (folder / "meta.json").write_text("{not json")


def _missing_meta(folder):
    (folder / "meta.json").unlink()


def _wrong_dim(folder):
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "dim": 16}))


def _duplicated_row(folder):
    index = (folder / "index.bin").read_bytes()
    index = index[:16] + index[:16] + index[32:]
    meta = json.loads((folder / "meta.json").read_text())
    meta["index_hash"] = hashlib.blake2b(index, digest_size=16).hexdigest()
    (folder / "index.bin").write_bytes(index)
    (folder / "meta.json").write_text(json.dumps(meta))


CORRUPTIONS = [_truncate_array, _drop_last_row, _flip_index_byte, _truncate_index,
               _garbage_meta, _missing_meta, _wrong_dim, _duplicated_row]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__.strip("_"))
def test_broken_cache_is_detected_and_rebuilt(guide, tmp_path, corrupt):
    first = GuideCache(guide, "tiny", root=tmp_path)
    want = first.embed(TEXTS)
    corrupt(first.path)

    with pytest.warns(UserWarning, match="inconsistent.*rebuilding"):
        cache = GuideCache(guide, "tiny", root=tmp_path)

    assert len(cache) == 0
    torch.testing.assert_close(cache.embed(TEXTS), want)
    assert cache.texts_encoded == len(TEXTS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(GuideCache(guide, "tiny", root=tmp_path)) == len(TEXTS)  # rebuilt one is sound


def _torn_append(folder):
    """What a disk that fills mid-append leaves: 1.67 rows of floats, a whole digest, no checksums, no meta."""
    with open(folder / "embeddings.f32", "ab") as f:
        f.write(np.ones(32 + 21, dtype="<f4").tobytes())
    with open(folder / "index.bin", "ab") as f:
        f.write(b"\x01" * 16)


def test_a_torn_append_keeps_the_rows_meta_vouches_for(guide, tmp_path):
    want = GuideCache(guide, "tiny", root=tmp_path).embed(TEXTS[:6])
    folder = next(tmp_path.iterdir())
    _torn_append(folder)

    with pytest.warns(UserWarning) as caught:
        cache = GuideCache(guide, "tiny", root=tmp_path)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "an append did not finish" in messages[0] and "cut back to those 6 rows" in messages[0]
    assert len(cache) == 6 and (folder / "embeddings.f32").stat().st_size == 6 * 32 * 4
    torch.testing.assert_close(cache.embed(TEXTS[:6]), want)
    assert cache.forward_passes == 0  # the intact rows are kept, not re-encoded
    torch.testing.assert_close(cache.embed(TEXTS), guide.encode(TEXTS, convert_to_tensor=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(GuideCache(guide, "tiny", root=tmp_path)) == len(TEXTS)


def _failing_writes(monkeypatch, error: int, after: int | None = None):
    """The cache's files cannot be opened for writing (``error``, a read-only workspace), or with
    ``after`` the first write to a data file lands that many bytes, then fails (a disk that fills)."""
    import builtins

    real_open = builtins.open

    class Filling:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def write(self, data):
            self.handle.write(bytes(data)[:after])
            self.handle.flush()
            raise OSError(error, os.strerror(error))

    def guarded_open(path, mode="r", *args, **kwargs):
        if not any(c in mode for c in "wax+"):
            return real_open(path, mode, *args, **kwargs)
        if after is None:
            raise OSError(error, os.strerror(error), str(path))
        handle = real_open(path, mode, *args, **kwargs)
        return handle if str(path).endswith("lock") else Filling(handle)

    monkeypatch.setattr("core.guides.guide_cache.open", guarded_open, raising=False)


def test_a_full_disk_during_an_append_is_one_line_and_keeps_the_stored_rows(guide, tmp_path, monkeypatch):
    import errno

    want = GuideCache(guide, "tiny", root=tmp_path).embed(TEXTS[:6])
    with monkeypatch.context() as patched:
        _failing_writes(patched, errno.ENOSPC, after=100)
        cache = GuideCache(guide, "tiny", root=tmp_path)
        with pytest.raises(GistlabError) as caught:
            cache.embed(TEXTS)
    line = str(caught.value)
    assert "\n" not in line and "No space left on device" in line and "rows stored before are kept" in line
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the failed append was cut back at once
        reopened = GuideCache(guide, "tiny", root=tmp_path)
    assert len(reopened) == 6
    torch.testing.assert_close(reopened.embed(TEXTS[:6]), want)
    assert reopened.forward_passes == 0


def test_a_read_only_cache_is_read_and_only_a_needed_write_is_one_line(guide, tmp_path, monkeypatch):
    """A read-only workspace: the lock file cannot be opened for writing; a full cache still serves."""
    import errno

    want = GuideCache(guide, "tiny", root=tmp_path).embed(TEXTS[:6])
    _failing_writes(monkeypatch, errno.EROFS)
    cache = GuideCache(guide, "tiny", root=tmp_path)
    torch.testing.assert_close(cache.embed(TEXTS[:6]), want)
    assert cache.forward_passes == 0
    with pytest.raises(GistlabError, match="Read-only file system.*make the workspace writable"):
        cache.embed(TEXTS)


def test_two_fills_of_the_same_texts_encode_them_once(guide, tmp_path, monkeypatch):
    """Two `gistlab cache` fills at once: the second waits for the first's chunk, then finds it stored."""
    import threading
    import time

    started = threading.Event()
    real_encode = GuideCache.encode

    def slow_encode(self, texts):
        started.set()
        time.sleep(0.5)  # the other fill starts while this one encodes
        return real_encode(self, texts)

    monkeypatch.setattr(GuideCache, "encode", slow_encode)
    caches = [GuideCache(guide, "tiny", root=tmp_path) for _ in range(2)]
    counts = [None, None]

    def fill(k):
        counts[k] = caches[k].fill(TEXTS)

    first = threading.Thread(target=fill, args=(0,))
    first.start()
    started.wait(5)
    fill(1)
    first.join()
    assert counts == [len(TEXTS), 0]
    assert caches[0].texts_encoded + caches[1].texts_encoded == len(TEXTS)
    torch.testing.assert_close(caches[1].embed(TEXTS), guide.encode(TEXTS, convert_to_tensor=True))


def test_two_writers_on_one_folder_stay_consistent(guide, tmp_path):
    a = GuideCache(guide, "tiny", root=tmp_path)
    b = GuideCache(guide, "tiny", root=tmp_path)  # opened before a writes: stale view
    a.embed(TEXTS[:6])
    b.embed(TEXTS[4:])  # b catches up with a's rows before appending its own

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        merged = GuideCache(guide, "tiny", root=tmp_path)
    assert len(merged) == len(TEXTS)
    torch.testing.assert_close(merged.embed(TEXTS), guide.encode(TEXTS, convert_to_tensor=True))
    assert merged.forward_passes == 0


def test_add_merges_a_shard_and_checks_its_shape(guide, tmp_path):
    shard = GuideCache(guide, "tiny", root=tmp_path / "shard")
    vectors = shard.embed(TEXTS[:6])
    main = GuideCache(guide, "tiny", root=tmp_path / "main")
    main.embed(TEXTS[4:])

    assert main.add(TEXTS[:6], vectors) == 4  # two were already there
    torch.testing.assert_close(main.embed(TEXTS[:6]), vectors)
    assert main.texts_encoded == 6
    with pytest.raises(ValueError, match="shape"):
        main.add(TEXTS[:2], vectors[:1])


def test_fill_encodes_only_what_is_missing(guide, tmp_path):
    cache = GuideCache(guide, "tiny", root=tmp_path)
    assert cache.fill(TEXTS[:4]) == 4
    assert cache.fill(TEXTS + TEXTS) == 6
    assert cache.fill(TEXTS) == 0 and cache.texts_encoded == 10


def test_the_cache_freezes_the_guide_it_is_given(tiny_model_dir, tmp_path):
    """Whoever loaded the guide (CLI, app, experiment), the cache runs it frozen and in eval mode."""
    model = SentenceTransformer(str(tiny_model_dir), device="cpu").train()
    GuideCache(model, "tiny", root=tmp_path)
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def _overwrite_rows(folder, rows, values):
    """Write ``values`` over embedding rows in place (same file size, as a stray write would)."""
    with open(folder / "embeddings.f32", "r+b") as f:
        for row in rows:
            f.seek(row * 32 * 4)
            f.write(np.asarray(values, dtype="<f4").tobytes())


@pytest.mark.parametrize("junk", ["random", "zeros"])
def test_corrupt_embeddings_are_found_on_open_and_only_they_are_re_encoded(guide, tmp_path, junk):
    want = GuideCache(guide, "tiny", root=tmp_path).embed(TEXTS)
    folder = next(tmp_path.iterdir())
    values = np.zeros(32) if junk == "zeros" else np.random.default_rng(0).normal(size=32)
    _overwrite_rows(folder, [2, 7], values)

    with pytest.warns(UserWarning) as caught:
        cache = GuideCache(guide, "tiny", root=tmp_path)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "2 of 10 stored embeddings failed their checksum" in messages[0]
    assert "\n" not in messages[0]
    assert len(cache) == 8 and TEXTS[2] not in cache and TEXTS[7] not in cache

    torch.testing.assert_close(cache.embed(TEXTS), want)
    assert cache.texts_encoded == 2  # only the two bad rows were rebuilt
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(GuideCache(guide, "tiny", root=tmp_path)) == 10


def test_embeddings_corrupted_after_open_are_caught_on_read(guide, tmp_path):
    cache = GuideCache(guide, "tiny", root=tmp_path)
    want = cache.embed(TEXTS)
    _overwrite_rows(cache.path, [4], np.full(32, 0.5))  # under a cache that is already open

    with pytest.warns(UserWarning, match="1 of 10 stored embeddings failed their checksum"):
        got = cache.embed(TEXTS[3:6])
    torch.testing.assert_close(got, want[3:6])
    assert cache.texts_encoded == 11


def test_a_row_swapped_with_another_texts_row_fails(guide, tmp_path):
    cache = GuideCache(guide, "tiny", root=tmp_path)
    want = cache.embed(TEXTS)
    _overwrite_rows(cache.path, [0], want[1].numpy())  # a real embedding, but of another text
    with pytest.warns(UserWarning, match="1 of 10"):
        torch.testing.assert_close(GuideCache(guide, "tiny", root=tmp_path).embed(TEXTS), want)


def test_checksum_file_of_the_wrong_length_rebuilds(guide, tmp_path):
    cache = GuideCache(guide, "tiny", root=tmp_path)
    cache.embed(TEXTS)
    path = cache.path / "checksums.u64"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.warns(UserWarning, match="inconsistent.*checksums.u64"):
        assert len(GuideCache(guide, "tiny", root=tmp_path)) == 0


def test_opening_counts_the_rows_it_verifies(guide, tmp_path, monkeypatch):
    """Opening reports (rows checked, rows) after each chunk, still finds a bad row, and a new cache reports nothing."""
    import core.guides.guide_cache

    heard = []
    GuideCache(guide, "tiny", root=tmp_path, progress=lambda *call: heard.append(call))
    assert heard == []  # nothing stored, nothing to check
    want = GuideCache(guide, "tiny", root=tmp_path).embed(TEXTS)
    _overwrite_rows(next(tmp_path.iterdir()), [9], np.zeros(32))
    monkeypatch.setattr(core.guides.guide_cache, "VERIFY_CHUNK", 4)
    with pytest.warns(UserWarning, match="1 of 10"):
        cache = GuideCache(guide, "tiny", root=tmp_path, progress=lambda *call: heard.append(call))
    assert heard == [(4, 10), (8, 10), (10, 10)]
    assert len(cache) == 9
    torch.testing.assert_close(cache.embed(TEXTS), want)


def test_a_fill_stopped_midway_keeps_its_chunks_and_resumes_without_re_encoding(guide, tmp_path, monkeypatch):
    """A fill interrupted after two chunks (a Stop's SIGINT, here raised from its progress) keeps those
    chunks; the next fill counts them as stored and encodes only the rest."""
    import core.guides.guide_cache as guide_cache

    monkeypatch.setattr(guide_cache, "FILL_CHUNK", 40)
    texts = [f"text {k} of the resumed fill" for k in range(300)]
    heard = []

    def stop_after_two_chunks(done, total):
        heard.append((done, total))
        if done >= 80:
            raise KeyboardInterrupt

    first = GuideCache(guide, "tiny", root=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        first.fill(texts + texts[:10], stop_after_two_chunks)  # repeats count once
    assert heard == [(0, 300), (40, 300), (80, 300)] and first.texts_encoded == 80

    resumed = GuideCache(guide, "tiny", root=tmp_path)
    assert len(resumed) == 80 and all(t in resumed for t in texts[:80])
    heard.clear()
    assert resumed.fill(texts, lambda done, total: heard.append((done, total))) == 220
    assert resumed.texts_encoded == 220 and len(resumed) == 300
    assert heard == [(80, 300), *((d, 300) for d in range(120, 300, 40)), (300, 300)]
    assert torch.allclose(resumed.embed(texts[:80]), first.embed(texts[:80]))  # the kept rows, read back
