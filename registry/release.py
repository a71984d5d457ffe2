"""The signed evidence that makes a version live: gathered from the ledger for deployers, and
checked offline in a deploy bundle (`gatewise deploy verify DIR`) by the same rules.

The evidence of a release is: every key entry up to its newest entry (so that each signer's
authority and lifecycle can be replayed), the version's candidate entry, the promotion that
moved the production alias to it (or the rollback that restored it, and the promotion that
rollback restores), and the gate results and waivers that promotion cites. ``check_evidence``
is the one judge: ``gather_release`` runs it before any deployer is called, and
``verify_deploy_bundle`` runs it on a device with nothing but the bundle's files.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from gatewise import deploy_bundle as layout
from gatewise.errors import GatewiseError, RegistryError, UsageError
from gatewise.registry import statements as st
from gatewise.registry.keys import keyid_of
from gatewise.registry.signed import MOVES, PROMOTIONS
from gatewise.registry.verify import Problem
from gatewise.types import sha256_file


class Opened(NamedTuple):
    """One signed entry, parsed (its signature not yet checked)."""

    where: str  # for messages: "entry 12" or "entries/00000012-promotion-v1.dsse.json"
    seq: int
    digest: str  # sha256 of the payload
    predicate_type: str
    signer: str
    subject: str  # the statement's subject sha256
    predicate: dict[str, Any]
    body: bytes
    signature: bytes
    envelope: str


def open_entry(where: str, envelope: str) -> Opened:
    """Parse a DSSE envelope into an ``Opened`` entry; ValueError names what is wrong with it."""
    try:
        body, signer, signature = st.open_envelope(envelope)
        stmt = st.parse_json(body)
        predicate = stmt["predicate"]
        seq = predicate["ledger"]["seq"]
        subject = stmt["subject"][0]["digest"]["sha256"]
        if type(seq) is not int or not isinstance(predicate, dict) or not isinstance(stmt["predicateType"], str):
            raise ValueError("its statement has the wrong shape")
    except st.EnvelopeError as exc:
        raise ValueError(str(exc)) from None
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"is not a signed gatewise statement ({type(exc).__name__}: {exc})") from None
    return Opened(where, seq, st.sha256_hex(body), stmt["predicateType"], signer, str(subject), predicate, body, signature, envelope)


def check_evidence(
    entries: list[Opened], version: str | None, sha256: str, trusted_keys: tuple[str, ...] = ()
) -> tuple[list[Problem], dict[str, bytes], str | None]:
    """Check the signatures, key lifecycle and promotion rules of a release's entries.

    Returns (problems, the public keys the entries introduce, the version they make live).
    ``version`` None: the version the newest promotion or rollback names.
    """
    from gatewise.registry.decisions import decision_facts
    from gatewise.registry.keyring import Keyring, key_facts

    problems: list[Problem] = []
    ring = Keyring(pinned=set(trusted_keys))
    valid: dict[int, Opened] = {}
    for entry in sorted(entries, key=lambda e: e.seq):
        if entry.seq in valid:
            problems.append(Problem(entry.where, f"holds entry {entry.seq} a second time (also {valid[entry.seq].where})", entry.seq))
            continue
        public = ring.public(entry.signer)
        if public is None and not ring.keys and entry.predicate_type in st.KEY_INTRODUCING and entry.signer == entry.predicate.get("keyid"):
            public = _b64(entry.predicate.get("public_key"))  # the genesis key signs itself
        if public is None:
            problems.append(Problem(entry.where, f"is signed by key {entry.signer[:16]}, which no key entry of the bundle introduces before it", entry.seq))
            continue
        if keyid_of(public) != entry.signer or not st.signature_valid(public, entry.body, entry.signature):
            problems.append(Problem(entry.where, f"signature does not verify with key {entry.signer[:16]}: the entry was changed or forged", entry.seq))
            continue
        try:
            if entry.predicate_type in st.KEY_TYPES:
                facts: Any = key_facts(entry.predicate_type, entry.predicate)
            elif entry.predicate_type in st.DECISION_TYPES:
                facts = decision_facts(entry.predicate_type, entry.predicate)
            else:
                facts = None
        except (KeyError, TypeError, IndexError):
            problems.append(Problem(entry.where, f"is not a well-formed {st.short_type(entry.predicate_type)} entry", entry.seq))
            continue
        found = ring.take(entry.seq, entry.signer, entry.predicate_type, facts)
        problems.extend(Problem(entry.where, what, entry.seq) for what in found)
        if not found:
            valid[entry.seq] = entry
    if not ring.keys:
        problems.append(Problem("bundle", "holds no key entry: no signature can be checked"))
    live_version = _release_problems(valid, version, sha256, problems)
    keys = {keyid: state.public_key for keyid, state in ring.keys.items()}
    return problems, keys, live_version


def _release_problems(valid: dict[int, Opened], version: str | None, sha256: str, problems: list[Problem]) -> str | None:
    """The rules a live release obeys, on the entries whose signatures held."""
    moves = [e for e in valid.values() if e.predicate_type in MOVES]
    if version is None and moves:
        version = str(max(moves, key=lambda e: e.seq).predicate.get("version"))
    if version is None:
        problems.append(Problem("bundle", "holds no signed promotion or rollback"))
        return None
    others = [e for e in valid.values() if e.predicate_type not in st.KEY_TYPES]
    for entry in others:
        if entry.predicate.get("version") != version:
            problems.append(Problem(entry.where, f"is about version {entry.predicate.get('version')}, not {version}", entry.seq))
        elif entry.subject != sha256:
            problems.append(Problem(entry.where, f"names artifact sha256 {entry.subject[:16]}..., but {layout.MODEL} has {sha256[:16]}...", entry.seq))
    ours = {e.seq: e for e in others if e.predicate.get("version") == version and e.subject == sha256}
    candidates = [e for e in ours.values() if e.predicate_type == st.CANDIDATE]
    if not candidates:
        problems.append(Problem("bundle", f"holds no verified candidate entry of {version} for this artifact"))
    elif candidates[-1].predicate.get("status") != "ok" or (candidates[-1].predicate.get("artifact") or {}).get("sha256") != sha256:
        problems.append(Problem(candidates[-1].where, f"does not register {sha256[:16]}... as the artifact of {version}", candidates[-1].seq))
    moves = [e for e in ours.values() if e.predicate_type in MOVES]
    if not moves:
        problems.append(Problem("bundle", f"holds no verified promotion or rollback that makes {version} live with this artifact"))
        return version
    promotion = live = max(moves, key=lambda e: e.seq)
    if live.predicate_type == st.ROLLBACK:
        restores = live.predicate.get("restores") or {}
        restored = ours.get(restores.get("seq"))
        if restored is None or restored.digest != restores.get("digest") or restored.predicate_type not in PROMOTIONS or restored.seq >= live.seq:
            problems.append(Problem(live.where, f"restores the promotion in entry {restores.get('seq')}, which is not among the bundle's verified entries", live.seq))
            return version
        promotion = restored
    _gate_citations(promotion, ours, problems)
    return version


def _gate_citations(promotion: Opened, ours: dict[int, Opened], problems: list[Problem]) -> None:
    """Each mandatory gate: a cited, verified result that passed, or failed under a cited waiver."""
    settled: set[str] = set()
    named: set[Any] = set()  # gates whose citation is already named as a problem
    for cited in promotion.predicate.get("gate_results") or []:
        gate = cited.get("gate") if isinstance(cited, dict) else None
        result = ours.get(cited.get("seq")) if gate else None
        if result is None or result.digest != cited.get("digest") or result.predicate_type != st.GATE_RESULT \
                or result.predicate.get("gate") != gate or result.seq >= promotion.seq:
            named.add(gate)
            problems.append(Problem(promotion.where, f"cites entry {cited.get('seq') if isinstance(cited, dict) else '?'} as the {gate} result, "
                                    "which is not among the bundle's verified entries", promotion.seq))
            continue
        if result.predicate.get("passed") is True:
            settled.add(gate)
            continue
        ref = cited.get("waiver") or {}
        waiver = ours.get(ref.get("seq"))
        covers = (
            promotion.predicate_type == st.PROMOTION_V2 and waiver is not None and waiver.predicate_type == st.WAIVER
            and waiver.digest == ref.get("digest")
            and any(g.get("gate") == gate and g.get("seq") == result.seq and g.get("digest") == result.digest
                    for g in waiver.predicate.get("gates") or [] if isinstance(g, dict))
        )
        if covers:
            settled.add(gate)
        else:
            named.add(gate)
            problems.append(Problem(promotion.where, f"relies on a failed {gate} result (entry {result.seq}) that no verified waiver in the bundle covers", promotion.seq))
    for gate in st.MANDATORY_GATES:
        if gate not in settled and gate not in named:
            problems.append(Problem(promotion.where, f"cites no passing or waived result of the mandatory {gate} gate", promotion.seq))


def _b64(text: Any) -> bytes | None:
    try:
        return base64.b64decode(text or "", validate=True)
    except (binascii.Error, ValueError, TypeError):
        return None


# -- from the ledger, for deployers ----------------------------------------------------------------


def gather_release(registry: Any, version: str) -> Any:
    """The ``Release`` of ``version``, the model's live production version, with its checked evidence.

    RegistryError when the version is not live, or when its entries do not check out.
    """
    from sqlalchemy import select

    from gatewise.encoding import INPUT_NAME, OUTPUT_NAME
    from gatewise.hookspecs import Release, SignedEntry
    from gatewise.registry.database import display_url
    from gatewise.registry.schema import LedgerEntry
    from gatewise.scoring import read_input_spec

    info = registry.version(version)
    if info.status != "ok" or not info.sha256:
        raise RegistryError(f"{version} errored and has no artifact to deploy")
    champion = registry.champion(info.model)
    if champion is None or champion.version != version:
        live = champion.version if champion else "none"
        raise RegistryError(f"{version} is not the production version of {info.model} (production: {live}): "
                            "only the live version is deployed; promote it or roll back to it first")
    ledger = LedgerEntry.__table__.c
    columns = (ledger.seq, ledger.digest, ledger.predicate_type, ledger.envelope)
    with registry.reading() as conn:
        def fetch(*conditions: Any) -> list[Any]:
            return list(conn.execute(select(*columns).where(*conditions).order_by(ledger.seq)))

        own = fetch(ledger.ref == version, ledger.predicate_type.in_((st.CANDIDATE, *MOVES)))
        moves = [row for row in own if row.predicate_type in MOVES]
        if not moves:
            raise RegistryError(f"the ledger holds no promotion of {version}; run `gatewise registry verify`")
        live = moves[-1]
        for row in fetch(ledger.seq > live.seq, ledger.predicate_type.in_(MOVES)):
            if _predicate(row).get("model") == info.model:
                raise RegistryError(f"{version} stopped being the production version of {info.model} at entry {row.seq}")
        rows = {row.seq: row for row in own if row.predicate_type == st.CANDIDATE}
        rows[live.seq] = live
        promotion = _predicate(live)
        if live.predicate_type == st.ROLLBACK:
            restored = fetch(ledger.seq == (promotion.get("restores") or {}).get("seq"))
            rows.update({row.seq: row for row in restored})
            promotion = _predicate(restored[0]) if restored else {}
        cited = [g.get("seq") for g in promotion.get("gate_results") or []]
        cited += [(g.get("waiver") or {}).get("seq") for g in promotion.get("gate_results") or []]
        wanted = sorted({seq for seq in cited if isinstance(seq, int)})
        if wanted:
            rows.update({row.seq: row for row in fetch(ledger.seq.in_(wanted))})
        rows.update({row.seq: row for row in fetch(ledger.predicate_type.in_(st.KEY_TYPES), ledger.seq <= live.seq)})
    opened = []
    for seq in sorted(rows):
        try:
            opened.append(open_entry(f"entry {seq}", rows[seq].envelope))
        except ValueError as exc:
            raise RegistryError(f"ledger entry {seq} is unreadable ({exc}); run `gatewise registry verify`") from None
    problems, keys, _ = check_evidence(opened, version, info.sha256)
    if problems:
        raise RegistryError(f"the signed evidence of {version} does not check out: {problems[0]}; run `gatewise registry verify`")
    artifact = registry.artifact_path(version)
    try:
        spec = read_input_spec(artifact)
    except (GatewiseError, OSError) as exc:
        raise RegistryError(f"cannot read the input contract of {version} from {artifact}: {exc}") from None
    return Release(
        model=info.model, version=version, sha256=info.sha256, artifact=artifact,
        size_bytes=artifact.stat().st_size if artifact.exists() else 0,
        input_contract=layout.contract_document(spec.to_json(), INPUT_NAME, OUTPUT_NAME),
        entries=tuple(SignedEntry(e.seq, e.digest, e.predicate_type, e.envelope) for e in opened),
        public_keys={keyid: base64.b64encode(public).decode("ascii") for keyid, public in sorted(keys.items())},
        registry=display_url(registry.url),
    )


def _predicate(row: Any) -> dict[str, Any]:
    try:
        return open_entry(f"entry {row.seq}", row.envelope).predicate
    except ValueError:
        return {}


# -- offline, on a device --------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleCheck:
    """What `gatewise deploy verify DIR` found."""

    directory: Path
    model: str | None
    version: str | None
    sha256: str | None
    entries: int
    keys: tuple[str, ...]
    problems: tuple[Problem, ...] = field(default_factory=tuple)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "directory": str(self.directory), "model": self.model, "version": self.version,
            "sha256": self.sha256, "entries": self.entries, "keys": list(self.keys),
            "problems": [{"where": p.where, "what": p.what} for p in self.problems], "seconds": round(self.seconds, 3),
        }


def verify_deploy_bundle(directory: Path, trusted_keys: tuple[str, ...] = ()) -> BundleCheck:
    """Check a deploy bundle with nothing but its files: the manifest's digests, every signature and
    key, that a promotion names this artifact and cites passing (or waived) results of all five
    mandatory gates, and that contract.json is the model's own contract."""
    started = time.perf_counter()
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"no deploy bundle at {directory}: not a directory")
    if not any((directory / name).exists() for name in (layout.MANIFEST, layout.MODEL, layout.ENTRIES)):
        raise UsageError(f"{directory} is not a deploy bundle: it has no {layout.MANIFEST}, {layout.MODEL} or {layout.ENTRIES}/")
    problems: list[Problem] = []
    present = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
    manifest = _check_manifest(directory, present, problems)
    model = directory / layout.MODEL
    if model.is_file():
        sha256 = sha256_file(model)
    else:
        sha256 = str(manifest.get("sha256", ""))
        if layout.MODEL not in manifest.get("files", {}):
            problems.append(Problem(layout.MODEL, "is missing from the bundle"))
    opened = []
    for name in present:
        if name.startswith(f"{layout.ENTRIES}/"):
            try:
                opened.append(open_entry(name, (directory / name).read_text(encoding="utf-8")))
            except (ValueError, UnicodeDecodeError) as exc:
                problems.append(Problem(name, f"cannot be read: {exc}"))
    if not opened:
        problems.append(Problem(layout.ENTRIES, "holds no signed entry"))
    found, keys, version = check_evidence(opened, manifest.get("version"), sha256, tuple(trusted_keys))
    problems.extend(found)
    if manifest and manifest.get("sha256") != sha256 and model.is_file():
        problems.append(Problem(layout.MANIFEST, f"names sha256 {str(manifest.get('sha256'))[:16]}..., but {layout.MODEL} has {sha256[:16]}..."))
    _check_keys(directory / layout.KEYS, keys, problems)
    if model.is_file():
        _check_contract(directory, model, problems)
    return BundleCheck(directory, manifest.get("model"), version, sha256 or None, len(opened), tuple(sorted(keys)),
                       tuple(problems), time.perf_counter() - started)


def _check_manifest(directory: Path, present: list[str], problems: list[Problem]) -> dict[str, Any]:
    try:
        manifest = json.loads((directory / layout.MANIFEST).read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != layout.FORMAT or not isinstance(manifest.get("files"), dict):
            raise ValueError(f"it is not a {layout.FORMAT} manifest")
    except FileNotFoundError:
        problems.append(Problem(layout.MANIFEST, "is missing from the bundle"))
        return {}
    except (OSError, ValueError) as exc:
        problems.append(Problem(layout.MANIFEST, f"cannot be read ({str(exc).splitlines()[0][:100]})"))
        return {}
    files = manifest["files"]
    for name, facts in sorted(files.items()):
        listed = facts.get("sha256") if isinstance(facts, dict) else None
        if name not in present:
            problems.append(Problem(name, f"is listed in {layout.MANIFEST} but missing from the bundle"))
        elif sha256_file(directory / name) != listed:
            problems.append(Problem(name, f"has sha256 {sha256_file(directory / name)[:16]}..., but {layout.MANIFEST} lists "
                                    f"{str(listed)[:16]}...: the file was changed after the bundle was written"))
    for name in present:
        if name != layout.MANIFEST and name not in files:
            problems.append(Problem(name, f"is not listed in {layout.MANIFEST}"))
    return manifest


def _check_keys(path: Path, keys: dict[str, bytes], problems: list[Problem]) -> None:
    """keys.json lists exactly the keys that the signed key entries introduce."""
    try:
        listed = {k["keyid"]: _b64(k.get("public_key")) for k in json.loads(path.read_text(encoding="utf-8"))["keys"]}
    except FileNotFoundError:
        problems.append(Problem(layout.KEYS, "is missing from the bundle"))
        return
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        problems.append(Problem(layout.KEYS, f"cannot be read ({type(exc).__name__})"))
        return
    for keyid, public in keys.items():
        if listed.pop(keyid, None) != public:
            problems.append(Problem(layout.KEYS, f"does not list key {keyid[:16]} as the signed key entries introduce it"))
    for keyid in listed:
        problems.append(Problem(layout.KEYS, f"lists key {str(keyid)[:16]}, which no signed key entry of the bundle introduces"))


def _check_contract(directory: Path, model: Path, problems: list[Problem]) -> None:
    from gatewise.encoding import INPUT_NAME, OUTPUT_NAME
    from gatewise.scoring import read_input_spec

    try:
        expected = layout.contract_document(read_input_spec(model).to_json(), INPUT_NAME, OUTPUT_NAME)
    except Exception as exc:  # noqa: BLE001 - any parse failure of untrusted bytes is one problem line
        problems.append(Problem(layout.MODEL, f"is not a gatewise ONNX model ({type(exc).__name__}: {str(exc)[:100]})"))
        return
    try:
        actual = json.loads((directory / layout.CONTRACT).read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(Problem(layout.CONTRACT, "is missing from the bundle"))
        return
    except (OSError, ValueError) as exc:
        problems.append(Problem(layout.CONTRACT, f"cannot be read ({type(exc).__name__})"))
        return
    if actual != expected:
        problems.append(Problem(layout.CONTRACT, f"differs from the input contract inside {layout.MODEL}"))
