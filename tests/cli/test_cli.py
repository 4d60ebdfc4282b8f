"""The command line: index (idempotent, resumable after kill -9, failures reported), search, eval, info, demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from browser import find_chromium, probe_images
from media_fixtures import sine, video_bytes, wav_bytes
from PIL import Image as PILImage
from typer.testing import CliRunner

from omniretrieve.calibration import DEFAULT_CALIBRATION
from omniretrieve.cli import app
from omniretrieve.demo import model_path
from omniretrieve.demo.world import make_world
from omniretrieve.documents import content_sha256
from omniretrieve.embedding import DEMO_MODEL_ID, DEMO_NOGAP_MODEL_ID, load_embedder
from omniretrieve.evaluation import evaluate
from omniretrieve.media import from_path
from omniretrieve.store import Store
from omniretrieve.testing import FakeEmbedder
from omniretrieve.types import Image

FAKE = "fake:16"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def fake_store(path: Path) -> Store:
    return Store(FakeEmbedder(16), path=path)


def write_png(path: Path, color: tuple[int, int, int], size: int = 12) -> None:
    PILImage.new("RGB", (size, size), color).save(path)


def good_folder(root: Path, n_texts: int, n_images: int) -> list[Path]:
    """Files of distinct content (so each is stored once), in nested folders."""
    (root / "notes" / "deep").mkdir(parents=True, exist_ok=True)
    (root / "pics").mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for i in range(n_texts):
        folder = root / "notes" / ("deep" if i % 2 else "")
        path = folder / f"note-{i:04d}.{'md' if i % 3 == 0 else 'txt'}"
        path.write_text(f"note number {i}: a {['red', 'blue', 'green'][i % 3]} thing\n", encoding="utf-8")
        files.append(path)
    for i in range(n_images):
        path = root / "pics" / f"pic-{i:04d}.png"
        write_png(path, (i % 256, (7 * i) % 256, (13 * i) // 256 % 256))
        files.append(path)
    return files


def expected_ids(files: list[Path]) -> set[str]:
    return {content_sha256(from_path(f)) for f in files}


# ---------------------------------------------------------------------------------------------
# index
# ---------------------------------------------------------------------------------------------


def test_index_twice_stores_nothing_new(tmp_path: Path) -> None:
    files = good_folder(tmp_path / "data", n_texts=6, n_images=4)
    (tmp_path / "data" / "media").mkdir()
    (tmp_path / "data" / "media" / "tone.wav").write_bytes(wav_bytes(sine(0.5, 8000), 8000))
    (tmp_path / "data" / "media" / "clip.mp4").write_bytes(video_bytes(frames=6))
    (tmp_path / "data" / "ignored.bin").write_bytes(b"\0\1")
    (tmp_path / "data" / ".hidden.txt").write_text("hidden", encoding="utf-8")
    store_dir = tmp_path / "store"
    code, out, _ = invoke("index", str(tmp_path / "data"), "--store", str(store_dir), "--model", FAKE)
    assert code == 0, out
    assert "12 added" in out and "0 failed" in out and "1 files of no supported type ignored" in out
    with fake_store(store_dir) as store:
        assert store.count() == 12 and store.count("text") == 6 and store.count("image") == 4
        assert store.count("audio") == 1 and store.count("video") == 1
        assert set(expected_ids(files)) == {d.id for d in store.get(sorted(expected_ids(files))) if d}

    # Again, without --model: the store's own model is used, and nothing new is stored.
    code, out, _ = invoke("index", str(tmp_path / "data"), "--store", str(store_dir))
    assert code == 0, out
    assert "0 added" in out and "12 already stored" in out
    with fake_store(store_dir) as store:
        assert store.count() == 12

    # The gallery of a search shows images and a video frame, inline.
    page = tmp_path / "all.html"
    code, out, _ = invoke(
        "search", "anything", "--store", str(store_dir), "-k", "12", "--html", str(page), "--json"
    )
    assert code == 0 and {r["modality"] for r in json.loads(out)["results"]} == {
        "text",
        "image",
        "audio",
        "video",
    }
    html = page.read_text(encoding="utf-8")
    assert html.count('<img class="thumb"') == 5 and 'data-modality="audio"' in html
    if find_chromium() is None:
        pytest.fail("Chromium is not installed: apt-get install chromium (scripts/test.sh installs it)")
    probe = probe_images(page, tmp_path / "browser")
    assert len(probe.images) == 5 and all(img.loaded for img in probe.images)
    assert {(img.width, img.height) for img in probe.images} == {(12, 12), (32, 24)}


def _index_command(folder: Path, store_dir: Path, batch: int) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from omniretrieve.cli import main; main()",
        "index",
        str(folder),
        "--store",
        str(store_dir),
        "--model",
        FAKE,
        "--batch-size",
        str(batch),
    ]


@pytest.mark.slow
def test_index_killed_with_sigkill_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    files = good_folder(tmp_path / "data", n_texts=300, n_images=60)
    store_dir = tmp_path / "store"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    proc = subprocess.Popen(
        _index_command(tmp_path / "data", store_dir, batch=6),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    stored_before_kill = 0
    deadline = time.monotonic() + 120
    try:
        # The first progress line comes once something is stored: kill then (mid-run).
        for line in proc.stderr:
            if line.startswith("indexed ") and not line.startswith("indexed 0/"):
                stored_before_kill = int(line.split()[1].split("/")[0])
                assert "files/s)" in line  # the rate so far
                break
            assert time.monotonic() < deadline, "index printed no progress"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert 0 < stored_before_kill < len(files)

    with fake_store(store_dir) as store:
        partial = store.count()
    assert 0 < partial < len(files), "the run was not interrupted mid-way"

    done = subprocess.run(
        _index_command(tmp_path / "data", store_dir, batch=50),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(files) - partial} added" in done.stdout
    assert f"{partial} already stored" in done.stdout

    ids = expected_ids(files)
    assert len(ids) == len(files)
    with fake_store(store_dir) as store:
        assert store.count() == len(files)  # nothing lost, nothing twice
        found = store.get(sorted(ids))
        assert all(d is not None for d in found)
        assert len({d.id for d in found if d}) == len(files)


def test_broken_files_are_listed_with_reasons_and_exit_nonzero(tmp_path: Path) -> None:
    data = tmp_path / "data"
    good = good_folder(data, n_texts=2, n_images=2)
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    (data / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF")
    (data / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    missing = tmp_path / "no-such-file.png"
    store_dir = tmp_path / "store"
    code, out, _ = invoke("index", str(data), str(missing), "--store", str(store_dir), "--model", FAKE)
    assert code == 1
    assert "4 added" in out and "4 failed" in out
    flat = " ".join(out.split())
    for name in ("broken.png", "truncated.jpg", "latin1.txt", "no-such-file.png"):
        assert name in flat
    assert "MediaDecodeError" in flat and "UTF-8" in flat and "no such file" in flat
    with fake_store(store_dir) as store:
        assert store.count() == len(good)

    # Only the broken ones fail again; the good ones are already stored.
    code, out, _ = invoke("index", str(data), "--store", str(store_dir))
    assert code == 1 and "0 added" in out and "4 already stored" in out and "3 failed" in out


# ---------------------------------------------------------------------------------------------
# search, eval, info on a small demo world indexed with the demo model
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("world")
    world = make_world(
        0,
        n_images=30,
        n_captions=30,
        n_distractors=6,
        n_text_queries=6,
        n_text_to_image_queries=4,
        n_image_queries=4,
    )
    folder = world.write(root / "world")
    store_dir = root / "store"
    code, out, err = invoke("index", str(folder / "corpus"), "--store", str(store_dir))
    assert code == 0, out + err
    return folder, store_dir


def test_search_json_matches_the_library(small_world: tuple[Path, Path]) -> None:
    folder, store_dir = small_world
    query_image = folder / "queries" / "q-img-0000.png"
    code, text_out, _ = invoke(
        "search", "a red circle in the top left", "--store", str(store_dir), "--json", "-k", "7"
    )
    assert code == 0
    code, image_out, _ = invoke(
        "search", "--image", str(query_image), "--store", str(store_dir), "--json", "--compare", "-k", "5"
    )
    assert code == 0
    by_text, by_image = json.loads(text_out), json.loads(image_out)
    assert (
        by_text["query"] == {"text": "a red circle in the top left"}
        and by_text["calibration"] == DEFAULT_CALIBRATION
    )
    assert set(by_image["lists"]) == {"none", DEFAULT_CALIBRATION}

    with Store(load_embedder("demo"), path=store_dir) as store:
        lib_text = store.search("a red circle in the top left", 7)
        lib_image = store.search(Image(query_image), 5)
        lib_image_raw = store.search(Image(query_image), 5, calibration="none")
    for got, want in (
        (by_text["results"], lib_text),
        (by_image["results"], lib_image),
        (by_image["lists"]["none"], lib_image_raw),
    ):
        assert [r["id"] for r in got] == [h.id for h in want]
        assert [r["score"] for r in got] == [h.score for h in want]
        assert [r["cosine"] for r in got] == [h.cosine for h in want]
        assert [r["modality"] for r in got] == [h.modality for h in want]
        assert [r["rank"] for r in got] == list(range(1, len(want) + 1))
    assert len(lib_text) == 7 and {r["modality"] for r in by_text["results"]} <= {"text", "image"}
    assert all(r["source"].startswith("file://") for r in by_text["results"])


def test_search_table_html_and_bad_input(small_world: tuple[Path, Path], tmp_path: Path) -> None:
    _, store_dir = small_world
    page = tmp_path / "g.html"
    code, out, _ = invoke(
        "search",
        "blue square",
        "--store",
        str(store_dir),
        "--compare",
        "--reranker",
        "fake",
        "--html",
        str(page),
    )
    assert code == 0
    assert "raw (cosine)" in out and f"calibrated ({DEFAULT_CALIBRATION})" in out and "reranked" in out
    html = page.read_text(encoding="utf-8")
    assert html.count("<h3>") == 3 and "blue square" in html
    code, _, err = invoke("search", "--store", str(store_dir))
    assert code == 2 and "give a text query" in err
    code, _, err = invoke("search", "--image", str(tmp_path / "missing.png"), "--store", str(store_dir))
    assert code == 2 and "missing.png" in err


def test_eval_matches_metrics_computed_from_the_library(small_world: tuple[Path, Path]) -> None:
    folder, store_dir = small_world
    code, out, _ = invoke(
        "eval", str(folder), "--store", str(store_dir), "--json", "--calibration", "gap", "-k", "5"
    )
    assert code == 0
    metrics = json.loads(out)["metrics"]["gap"]
    assert set(metrics) == {"text->mixed", "text->image", "image->image", "all"}

    queries = json.loads((folder / "queries.json").read_text())
    qrels = json.loads((folder / "judgments.json").read_text())
    docs = json.loads((folder / "docs.json").read_text())
    name_of = {(folder / d["path"]).resolve().as_uri(): doc_id for doc_id, d in docs.items()}
    run: dict[str, list[str]] = {}
    with Store(load_embedder("demo"), path=store_dir) as store:
        for q in queries:
            item = Image(folder / q["image"]) if "image" in q else q["text"]
            kinds = None if q["target"] == "mixed" else [q["target"]]
            hits = store.search(item, 5, modalities=kinds)
            run[q["id"]] = [name_of.get(h.document.source or "", h.id) for h in hits]
    assert metrics["all"] == pytest.approx(evaluate(run, qrels, 5), abs=1e-9)
    text_ids = [q["id"] for q in queries if "text" in q and q["target"] == "mixed"]
    assert metrics["text->mixed"] == pytest.approx(
        evaluate(run, {i: qrels[i] for i in text_ids}, 5), abs=1e-9
    )


def test_eval_names_the_malformed_entry_before_opening_a_store(tmp_path: Path) -> None:
    (tmp_path / "queries.json").write_text('[{"id": "q1", "text": "red", "target": "pictures"}]')
    (tmp_path / "judgments.json").write_text('{"q1": {"a": 1}}')
    code, _, err = invoke("eval", str(tmp_path), "--store", str(tmp_path / "no-store"))
    assert code == 2
    assert f"{tmp_path / 'queries.json'}[0].target: must be one of" in " ".join(err.split())
    code, _, err = invoke("eval", "--queries", str(tmp_path / "queries.json"), "--store", str(tmp_path))
    assert code == 2 and "give a folder, or --queries FILE and --judgments FILE" in err
    assert not (tmp_path / "no-store").exists()


def test_info_reports_model_counts_and_calibration(
    small_world: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, store_dir = small_world
    import omniretrieve.embedding

    real_load = omniretrieve.embedding.load_embedder
    loaded: list[str] = []

    def spy(spec: str, **kwargs: object) -> object:
        loaded.append(spec)
        return real_load(spec, **kwargs)

    monkeypatch.setattr(omniretrieve.embedding, "load_embedder", spy)
    code, out, _ = invoke("info", "--store", str(store_dir), "--json")
    assert code == 0
    info = json.loads(out)
    assert info["model"] == DEMO_MODEL_ID  # the stable id, not the installation's path
    assert info["dimension"] == json.loads((model_path() / "config.json").read_text())["projection_dim"]
    assert info["similarity"] == "cosine" and info["schema"] == 1
    assert info["counts"]["image"] == 30 and info["counts"]["text"] == info["documents"] - 30
    assert info["calibration"]["statistics_counts"]["image"] == 30
    assert info["calibration"]["gaps"]["text-image"] > 0.5  # the demo model's documented gap
    code, out, _ = invoke("info", "--store", str(store_dir))
    assert code == 0 and "modality gap" in out and "demo" in out and DEMO_MODEL_ID in out
    assert loaded == []  # info loads no model
    code, _, err = invoke("info", "--store", str(tmp_path / "nothing"))
    assert code == 2 and "no omniretrieve store" in err and not (tmp_path / "nothing").exists()

    # --model checks the store against a model.
    code, out, _ = invoke("info", "--store", str(store_dir), "--model", "demo", "--json")
    assert code == 0 and json.loads(out)["model"] == DEMO_MODEL_ID and loaded == ["demo"]
    code, _, err = invoke("info", "--store", str(store_dir), "--model", DEMO_NOGAP_MODEL_ID)
    assert code == 2 and "holds embeddings of model 'omniretrieve/demo-clip'" in " ".join(err.split())
    code, _, err = invoke("info", "--store", str(store_dir), "--model", "fake:0")
    assert code == 2 and "--model fake:0" in err


def test_a_store_reopens_with_the_model_it_was_built_with(tmp_path: Path) -> None:
    """A store built with the gap-free twin: commands without --model load the twin, not the demo model."""
    store_dir = tmp_path / "store"
    picture = tmp_path / "red.png"
    write_png(picture, (220, 20, 20), size=32)
    with Store(load_embedder(DEMO_NOGAP_MODEL_ID), path=store_dir) as store:
        store.add(["a red circle", "a blue square", "the weather tomorrow", Image(picture)])
        want = store.search("a red circle", k=4)
    code, out, err = invoke("search", "a red circle", "--store", str(store_dir), "--json", "-k", "4")
    assert code == 0, err
    got = json.loads(out)["results"]
    assert [r["id"] for r in got] == [h.id for h in want]
    assert [r["score"] for r in got] == pytest.approx([h.score for h in want], abs=1e-6)
    code, _, err = invoke("search", "a red circle", "--store", str(store_dir))
    assert code == 0 and f"model: demo without its modality gap ({DEMO_NOGAP_MODEL_ID})" in err
    # Asking for another model is refused by the store, not silently mixed.
    code, _, err = invoke("search", "a red circle", "--store", str(store_dir), "--model", "demo")
    assert code == 2 and "holds embeddings of model 'omniretrieve/demo-clip-nogap'" in " ".join(err.split())


def test_info_while_the_store_is_open_for_writing(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    with fake_store(store_dir) as store:
        store.add(["one", "two"])
        code, out, err = invoke("info", "--store", str(store_dir), "--json")
        assert code == 0, err
        assert json.loads(out)["counts"]["text"] == 2 and json.loads(out)["model"] == FAKE
        store.add(["three"])  # the writer goes on
        assert store.count() == 3


# ---------------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_runs_prints_ndcg_and_writes_a_gallery_that_renders(tmp_path: Path) -> None:
    code, out, err = invoke("demo", "--out", str(tmp_path / "demo"))
    assert code == 0, out + err
    flat = " ".join(out.split())
    world = make_world(0)
    distinct = len({d.text for d in world.docs if d.text is not None}) + sum(
        d.image is not None for d in world.docs
    )
    assert f"{len(world.docs)} documents" in flat
    assert f"{distinct} added" in flat  # files of identical content (repeated distractors) are stored once
    assert f"{len(world.docs) - distinct} already stored" in flat
    ndcg_lines = [line for line in out.splitlines() if "nDCG@10" in line]
    assert len(ndcg_lines) >= 8
    none_all = float(next(x for x in out.splitlines() if x.startswith("nDCG@10 none")).split()[-1])
    gap_all = float(next(x for x in out.splitlines() if x.startswith("nDCG@10 gap")).split()[-1])
    assert gap_all > none_all  # calibration closes the demo model's modality gap
    assert "omniretrieve demo --reranker" in flat
    gallery = tmp_path / "demo" / "gallery.html"
    assert f"gallery: {gallery.resolve()}" in flat
    html = gallery.read_text(encoding="utf-8")
    assert html.count("<section") == 5  # three easy showcase queries, two hard ones

    if find_chromium() is None:
        pytest.fail("Chromium is not installed: apt-get install chromium (scripts/test.sh installs it)")
    probe = probe_images(gallery, tmp_path / "browser")
    assert len(probe.images) == html.count("<img") >= 40
    assert all(img.loaded for img in probe.images), [img for img in probe.images if not img.loaded]

    # Again, with a reranker: nothing new is indexed, and a reranked list appears.
    code, out, _ = invoke("demo", "--out", str(tmp_path / "demo"), "--reranker", "fake")
    assert code == 0
    assert "0 added" in out and "reranked" in out and "omniretrieve demo --reranker" not in out


# ---------------------------------------------------------------------------------------------
# a Chroma server instead of an embedded directory
# ---------------------------------------------------------------------------------------------


@pytest.mark.server
def test_index_search_info_through_a_chroma_server(tmp_path: Path) -> None:
    from chroma_server import ChromaServer

    files = good_folder(tmp_path / "data", n_texts=5, n_images=3)
    with ChromaServer(tmp_path / "db") as server:
        where = ["--chroma-host", server.host, "--chroma-port", str(server.port), "--model", FAKE]
        code, out, _ = invoke("index", str(tmp_path / "data"), *where)
        assert code == 0 and "8 added" in out
        code, out, _ = invoke("index", str(tmp_path / "data"), *where)
        assert code == 0 and "0 added" in out and "8 already stored" in out
        query = files[3].read_text(encoding="utf-8")  # exactly a stored text: the fake embeds it identically
        code, out, _ = invoke("search", query, *where, "--json", "-k", "3")
        assert code == 0
        hits = json.loads(out)["results"]
        assert hits[0]["id"] == content_sha256(from_path(files[3]))
        # Without --model, commands use the model the server's store was built with.
        code, out, err = invoke(
            "search", query, "--chroma-host", server.host, "--chroma-port", str(server.port), "--json"
        )
        assert code == 0, err
        assert json.loads(out)["results"][0]["id"] == hits[0]["id"]
        code, out, _ = invoke("info", *where, "--json")
        assert code == 0 and json.loads(out)["counts"] == {
            "text": 5,
            "image": 3,
            "audio": 0,
            "video": 0,
            "combined": 0,
        }
        code, _, err = invoke("index", str(tmp_path / "data"), *where, "--store", str(tmp_path / "s"))
        assert code == 2 and "give one" in err
