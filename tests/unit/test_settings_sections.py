"""Each module owns its settings section and its defaults: Settings, the help of
``embedserve serve`` and the README's settings tables show those same defaults, and a
setting given as a flag or an environment variable reaches the module that uses it."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from embedserve.connectors import EdgeStore, RetryingStore, StoreSettings, open_store
from embedserve.connectors.process import ProcessStore
from embedserve.server.auth import AuthSettings
from embedserve.server.batcher import BatchLimits
from embedserve.server.cli import ENV_ONLY, build_parser, settings_from
from embedserve.server.config import Settings
from embedserve.server.connlimit import ConnectionLimits
from embedserve.server.embedder import RequestLimits
from embedserve.server.embedding_service import EmbedStreamLimits
from embedserve.server.http.settings import HttpSettings
from embedserve.server.ingestion import IngestSettings
from embedserve.server.logs import LogSettings
from embedserve.server.model_settings import ModelSettings, RerankerSettings
from embedserve.server.query_cache import QueryCacheSettings
from embedserve.server.ratelimit import RateLimitSettings
from embedserve.server.tls import TlsSettings
from embedserve.server.vector_convert import CollectionLayout

SECTIONS = (
    ModelSettings,
    RerankerSettings,
    BatchLimits,
    RequestLimits,
    ConnectionLimits,
    EmbedStreamLimits,
    QueryCacheSettings,
    HttpSettings,
    StoreSettings,
    IngestSettings,
    CollectionLayout,
    LogSettings,
    AuthSettings,
    TlsSettings,
    RateLimitSettings,
)
# The server assembly's own settings (app.py, cli.py), defined in Settings itself.
SERVER_OWN = {"host", "port", "grace_period_s", "metrics_port", "otel_tracing"}
README = Path(__file__).resolve().parents[2] / "README.md"


def names_of(kind: Any) -> list[str]:
    return [field.name for field in dataclasses.fields(kind)]


def test_every_setting_is_in_one_section_or_the_servers_own() -> None:
    in_sections = [name for kind in SECTIONS for name in names_of(kind)]
    assert len(in_sections) == len(set(in_sections)), "a setting in two sections"
    assert not set(in_sections) & SERVER_OWN
    assert set(in_sections) | SERVER_OWN == set(names_of(Settings))


@pytest.mark.parametrize("kind", SECTIONS, ids=lambda kind: kind.__name__)
def test_settings_defaults_are_the_section_defaults(kind: Any) -> None:
    defaults = Settings()
    assert defaults.section(kind) == kind()
    for name in names_of(kind):
        # Same type too: a flag or variable is parsed with the type of Settings' default.
        assert type(getattr(defaults, name)) is type(getattr(kind(), name)), name


def serve_help() -> str:
    """``embedserve serve --help``, with its line wrapping undone."""
    commands = next(a for a in build_parser()._actions if a.choices and "serve" in a.choices)
    return " ".join(commands.choices["serve"].format_help().split())


@pytest.mark.parametrize("kind", SECTIONS, ids=lambda kind: kind.__name__)
def test_serve_help_documents_each_section_default(kind: Any) -> None:
    text = serve_help()
    for name in names_of(kind):
        default = getattr(kind(), name)
        if name in ENV_ONLY:  # secrets: never a flag, so never in the process list
            assert "--" + name.replace("_", "-") + " " not in text
            continue
        assert "--" + name.replace("_", "-") in text
        assert f"env EMBEDSERVE_{name.upper()}; default {default!r}" in text, name


# README wordings of defaults that are not literal values.
README_WORDS: dict[str, Any] = {
    "true": True,
    "false": False,
    "(none)": "",
    "none": "",
    "model's own (0)": 0,
    "0 (torch decides)": 0,
    "64 MiB": 64 * 1024 * 1024,
}


def readme_defaults() -> dict[str, str]:
    """Setting name -> its default as the README's "setting | default | meaning" tables
    write it. A row may name several settings, with one default each or one for all."""
    defaults: dict[str, str] = {}
    in_table = False
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells == ["setting", "default", "meaning"]:
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
        if not in_table or cells[0].startswith("---"):
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        values = cells[1].split(", ")
        if len(values) != len(names):
            values = [cells[1]] * len(names)
        for name, value in zip(names, values, strict=True):
            defaults[name.removeprefix("EMBEDSERVE_").lower()] = value.strip("`")
    return defaults


def test_readme_settings_tables_show_the_defaults() -> None:
    written = readme_defaults()
    section_names = {name for kind in SECTIONS for name in names_of(kind)}
    assert section_names <= set(written), section_names - set(written)
    settings = Settings()
    for name, text in written.items():
        default = getattr(settings, name)
        if name == "max_batch_tokens":
            cpu, gpu = map(int, re.fullmatch(r"(\d+) on CPU, (\d+) on GPU \(0\)", text).groups())  # type: ignore[union-attr]
            assert default == 0  # picked for the device:
            assert BatchLimits().for_device("cpu").max_batch_tokens == cpu
            assert BatchLimits().for_device("cuda").max_batch_tokens == gpu
            continue
        value = README_WORDS[text] if text in README_WORDS else type(default)(text)
        assert value == default, f"README says {name} = {text!r}; Settings has {default!r}"


def test_ingest_inflight_and_other_flags_reach_the_services(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from embedserve.server.app import EmbedServer

    monkeypatch.setenv("EMBEDSERVE_INGEST_INFLIGHT", "3")
    monkeypatch.setenv("EMBEDSERVE_DEFAULT_SHARD_NUMBER", "4")
    monkeypatch.setenv("EMBEDSERVE_STREAM_INFLIGHT", "9")  # the flag below wins
    flags = ["serve", "--stream-inflight", "5", "--max-write-points", "7", "--port", "0"]
    settings = settings_from(build_parser().parse_args(flags))

    async def build() -> EmbedServer:
        return EmbedServer(settings)  # not started: the services exist, nothing is bound

    server = asyncio.run(build())
    ingest = IngestSettings(ingest_inflight=3, max_write_points=7)
    assert server.vector_service.ingest == ingest  # gRPC Ingest and IngestStream
    assert server.http_backend.settings.section(IngestSettings) == ingest  # HTTP ingest
    assert server.vector_service.layout == CollectionLayout(default_shard_number=4)
    assert server.embedding_service.stream_limits == EmbedStreamLimits(stream_inflight=5)


def test_store_flags_reach_open_store(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    flags = ["serve", "--data-dir", data, "--no-store-process", "--store-retry-attempts", "2"]
    settings = settings_from(build_parser().parse_args(flags))
    with open_store(settings.section(StoreSettings)) as store:
        assert isinstance(store, RetryingStore) and isinstance(store.inner, EdgeStore)
        assert store.inner.data_dir == Path(data)
        assert store.policy.max_attempts == 2
        assert store.policy.max_total_s == StoreSettings.store_retry_max_s
    # The default runs the embedded engine in a child process, as the server does.
    with open_store(StoreSettings(data_dir=data), retry=False) as store:
        assert isinstance(store, ProcessStore)


def test_chunk_overlap_tokens_reaches_the_tokenizer(minilm_path: Path) -> None:
    from embedserve.server.model import EncoderModel
    from embedserve.server.tokenization import Overflow

    flags = ["serve", "--model", str(minilm_path), "--device", "cpu", "--max-tokens", "16"]
    settings = settings_from(build_parser().parse_args([*flags, "--chunk-overlap-tokens", "5"]))
    model = EncoderModel.load(settings.section(ModelSettings))
    text = (
        "apple river stone cloud tiger piano candle forest mirror ocean garden rocket "
        "window bridge castle engine violin meadow harbor lantern desert glacier"
    )  # distinct words: windows share exactly the overlap
    encoded = model.tokenizer.encode([text], "", Overflow.CHUNK)[0]
    first, second = (window[1:-1] for window in encoded.windows[:2])  # without [CLS], [SEP]
    shared = max(k for k in range(len(first)) if first[len(first) - k :] == second[:k])
    assert shared == 5  # the default, 128, would be capped at half the window: 7


def test_every_numeric_setting_has_a_range() -> None:
    from embedserve.server.settings_bounds import BOUNDS

    numeric = {f.name for f in dataclasses.fields(Settings) if type(f.default) in (int, float)}
    assert numeric == set(BOUNDS)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            ["--max-queue-items", "0"],
            "--max-queue-items (EMBEDSERVE_MAX_QUEUE_ITEMS) must be at least 1; got 0",
        ),
        (
            ["--max-batch-size", "0"],
            "--max-batch-size (EMBEDSERVE_MAX_BATCH_SIZE) must be at least 1",
        ),
        (["--port", "70000"], "--port (EMBEDSERVE_PORT) must be from 0 to 65535; got 70000"),
        (
            ["--max-padding-share", "2"],
            "--max-padding-share (EMBEDSERVE_MAX_PADDING_SHARE) must be from 0 to 1",
        ),
        (
            ["--max-wait-ms", "nan"],
            "--max-wait-ms (EMBEDSERVE_MAX_WAIT_MS) must be a finite number; got nan",
        ),
        (
            ["--grace-period-s", "-1"],
            "--grace-period-s (EMBEDSERVE_GRACE_PERIOD_S) must be at least 0",
        ),
        (
            ["--log-level", "loud"],
            "--log-level (EMBEDSERVE_LOG_LEVEL) must be one of DEBUG, INFO, WARNING, ERROR, "
            "CRITICAL; got 'loud'",
        ),
        # Choices the model's load checked, seconds later and without naming the flag.
        (
            ["--dtype", "fp32"],
            "--dtype (EMBEDSERVE_DTYPE) must be one of auto, float32, float16, bfloat16",
        ),
        (["--backend", "tensorrt"], "--backend (EMBEDSERVE_BACKEND) must be one of torch,"),
        (["--bert-path", "fastest"], "--bert-path (EMBEDSERVE_BERT_PATH) must be one of auto,"),
        (["--modernbert-path", "x"], "--modernbert-path (EMBEDSERVE_MODERNBERT_PATH) must be"),
    ],
)
def test_a_setting_out_of_range_stops_serve_naming_it(
    flags: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Out of range, these failed far from their flag or not at all: queue items 0 as "the
    queue is full" at warm-up, batch size 0 as batches of one, port 70000 as port 4464."""
    from embedserve.server.cli import main

    assert main(["serve", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("embedserve: ") and expected in err


def test_a_setting_out_of_range_in_the_environment_is_named_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EMBEDSERVE_STORE_RETRY_ATTEMPTS", "0")
    with pytest.raises(
        ValueError, match=r"--store-retry-attempts \(EMBEDSERVE_STORE_RETRY_ATTEMPTS\)"
    ):
        settings_from(build_parser().parse_args(["serve"]))


@pytest.mark.parametrize(
    ("raw", "read"), [("true", True), (" On ", True), ("0", False), ("no", False)]
)
def test_a_switch_in_the_environment_takes_yes_or_no_words(
    monkeypatch: pytest.MonkeyPatch, raw: str, read: bool
) -> None:
    monkeypatch.setenv("EMBEDSERVE_AUTH_HEALTH", raw)
    assert settings_from(build_parser().parse_args(["serve"])).auth_health is read


def test_a_mistyped_switch_in_the_environment_is_refused_not_read_as_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ "ture" turned auth_health off: health and reflection open without a key."""
    monkeypatch.setenv("EMBEDSERVE_AUTH_HEALTH", "ture")
    with pytest.raises(ValueError, match=r"EMBEDSERVE_AUTH_HEALTH='ture' is not a valid bool"):
        settings_from(build_parser().parse_args(["serve"]))


def test_a_device_torch_does_not_know_is_named_without_torch_s_list() -> None:
    from embedserve.server.errors import ModelLoadError
    from embedserve.server.model import pick_device

    with pytest.raises(ModelLoadError) as error:
        pick_device("tpu")
    assert str(error.value) == (
        "device must be auto, cpu, cuda or cuda:N (or another torch device); got 'tpu'"
    )
    with pytest.raises(ModelLoadError, match="cuda:99"):
        pick_device("cuda:99")


def test_max_tokens_above_the_models_positions_is_capped_and_said(
    minilm_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from embedserve.server.model import EncoderModel

    flags = ["serve", "--model", str(minilm_path), "--device", "cpu", "--max-tokens", "100000"]
    settings = settings_from(build_parser().parse_args(flags))
    with caplog.at_level("WARNING", logger="embedserve.server.model"):
        model = EncoderModel.load(settings.section(ModelSettings))
    assert model.spec.max_tokens == 512  # MiniLM's position embeddings
    assert "max_tokens 100000 is more than the model's 512 positions; using 512" in caplog.text


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        # Never SERVING, and SIGTERM held off while the batcher waited for company.
        (
            ["--max-wait-ms", "1e300"],
            "--max-wait-ms (EMBEDSERVE_MAX_WAIT_MS) must be from 0 to 10000; got 1e+300",
        ),
        # Accepted, then every store call failed (OverflowError, DEADLINE_EXCEEDED).
        (
            ["--qdrant-timeout-s", "1e300"],
            "--qdrant-timeout-s (EMBEDSERVE_QDRANT_TIMEOUT_S) must be from 0.001 to 86400; "
            "got 1e+300",
        ),
        # An OverflowError and a traceback at warm-up (torch takes a C int).
        (
            ["--torch-threads", "2147483648"],
            "--torch-threads (EMBEDSERVE_TORCH_THREADS) must be from 0 to 1024; got 2147483648",
        ),
        # Batches quietly capped at 4.
        (
            ["--sort-window", "4", "--max-batch-size", "256"],
            "--sort-window (EMBEDSERVE_SORT_WINDOW) must be at least --max-batch-size "
            "(EMBEDSERVE_MAX_BATCH_SIZE), 256: a batch is cut from at most sort_window queued "
            "inputs; got 4",
        ),
        # Every create relying on the defaults refused, naming a field the caller never set.
        (
            ["--default-write-consistency-factor", "2"],
            "--default-write-consistency-factor (EMBEDSERVE_DEFAULT_WRITE_CONSISTENCY_FACTOR) "
            "must be at most --default-replication-factor "
            "(EMBEDSERVE_DEFAULT_REPLICATION_FACTOR), 1: a create that takes both defaults "
            "would be refused; got 2",
        ),
        # The embedded store, silently: the operator meant a Qdrant server.
        (
            ["--qdrant-api-key", "k"],
            "--qdrant-api-key (EMBEDSERVE_QDRANT_API_KEY) is set, --qdrant-url "
            "(EMBEDSERVE_QDRANT_URL) is not: without a Qdrant server the embedded store is "
            "used, which takes no key",
        ),
        (
            ["--qdrant-grpc-port", "6334"],
            "--qdrant-grpc-port (EMBEDSERVE_QDRANT_GRPC_PORT) is set, --qdrant-url",
        ),
        # The current directory, silently.
        (
            ["--data-dir", ""],
            "--data-dir (EMBEDSERVE_DATA_DIR) must name a folder (an empty one would be the "
            "current directory); got ''",
        ),
        (["--data-dir", "  "], "--data-dir (EMBEDSERVE_DATA_DIR) must name a folder"),
    ],
)
def test_settings_that_failed_later_or_quietly_are_refused_naming_them(
    flags: list[str], expected: str
) -> None:
    with pytest.raises(ValueError) as refused:
        settings_from(build_parser().parse_args(["serve", *flags]))
    assert expected in str(refused.value)


def test_settings_bounded_by_each_other_take_their_defaults_and_equal_values() -> None:
    defaults = Settings()
    assert defaults.sort_window >= defaults.max_batch_size
    assert defaults.default_write_consistency_factor <= defaults.default_replication_factor
    flags = ["serve", "--sort-window", "64", "--max-batch-size", "64"]
    flags += ["--default-replication-factor", "2", "--default-write-consistency-factor", "2"]
    settings = settings_from(build_parser().parse_args(flags))
    assert (settings.sort_window, settings.default_write_consistency_factor) == (64, 2)


def test_a_setting_refused_at_start_exits_2_naming_both_flags(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from embedserve.server.cli import main

    assert main(["serve", "--sort-window", "4", "--port", "0", "--http-port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("embedserve: --sort-window (EMBEDSERVE_SORT_WINDOW) must be at least")
    assert "--max-batch-size" in err and "Traceback" not in err


@pytest.mark.parametrize("blank", ["", " ", "\t\n"])
def test_a_blank_variable_is_unset_for_every_setting(
    monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    """ " " turned a switch off (it read as "no"), where "" kept the default."""
    for field in dataclasses.fields(Settings):
        monkeypatch.setenv(f"EMBEDSERVE_{field.name.upper()}", blank)
    settings = settings_from(build_parser().parse_args(["serve"]))
    assert settings == Settings()
    assert settings.store_process is True and settings.keep_freed_memory is True


@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_an_ipv6_host_is_kept_without_brackets(host: str) -> None:
    settings = settings_from(build_parser().parse_args(["serve", "--host", host]))
    assert settings.host == "::1"
    assert Settings(host="[::]").host == "::"


def test_max_tokens_with_no_room_for_text_is_refused_naming_the_smallest(
    minilm_path: Path,
) -> None:
    """A ValueError from the tokenizer, and a traceback, once the model had loaded."""
    from embedserve.server.errors import ModelLoadError
    from embedserve.server.model import EncoderModel

    flags = ["serve", "--model", str(minilm_path), "--device", "cpu", "--max-tokens", "2"]
    settings = settings_from(build_parser().parse_args(flags))
    with pytest.raises(ModelLoadError) as refused:
        EncoderModel.load(settings.section(ModelSettings))
    assert refused.value.message == (
        "--max-tokens (EMBEDSERVE_MAX_TOKENS) 2 leaves no room for text beside the 2 "
        f"special tokens of model '{minilm_path}'; it takes at least 3"
    )
    flags[-1] = "3"  # [CLS], one token of text, [SEP]
    settings = settings_from(build_parser().parse_args(flags))
    model = EncoderModel.load(settings.section(ModelSettings))
    assert model.spec.max_tokens == 3


def test_serve_with_no_room_for_text_exits_2_without_a_traceback(
    minilm_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from embedserve.server.cli import main

    flags = ["--model", str(minilm_path), "--device", "cpu", "--max-tokens", "1"]
    flags += ["--port", "0", "--http-port", "0", "--data-dir", str(tmp_path / "data")]
    assert main(["serve", *flags]) == 2
    err = capsys.readouterr().err
    assert "embedserve: --max-tokens (EMBEDSERVE_MAX_TOKENS) 1 leaves no room" in err
    assert "it takes at least 3" in err and "Traceback" not in err


def test_mps_where_torch_has_none_is_refused_as_a_missing_cuda_is(
    minilm_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pick_device gave torch any device but cuda unchecked: a traceback once loaded."""
    import torch

    from embedserve.server.cli import main
    from embedserve.server.errors import ModelLoadError
    from embedserve.server.model import pick_device

    if torch.backends.mps.is_available():
        pytest.skip("this torch has an MPS device")
    with pytest.raises(ModelLoadError) as refused:
        pick_device("mps")
    assert refused.value.message == (
        "--device (EMBEDSERVE_DEVICE) 'mps' was requested but this torch has no MPS device "
        "(Apple GPUs); use auto or cpu"
    )
    flags = ["--model", str(minilm_path), "--device", "mps", "--port", "0", "--http-port", "0"]
    assert main(["serve", *flags, "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "embedserve: --device (EMBEDSERVE_DEVICE) 'mps' was requested" in err
    assert "Traceback" not in err
