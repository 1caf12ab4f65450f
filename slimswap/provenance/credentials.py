"""C2PA content credentials: sign every output, read them back (through `c2pa-python`).

Platforms, newsrooms and the Content Credentials validators read C2PA manifests, not our
metadata keys. Each output gets a manifest whose `c2pa.created` action says
digitalSourceType = IPTC compositeWithTrainedAlgorithmicMedia, names slimswap, its version
and the model, and binds the exact bytes written (so signing runs last, after the watermark
and the metadata, on the encoded file, before it is renamed into place).

Credentials, first found wins: the paths given (`--c2pa-cert/--c2pa-key`), the environment
(`SLIMSWAP_C2PA_CERT`/`SLIMSWAP_C2PA_KEY`), else a local pair created on first use in
`<config dir>/c2pa/` (`$SLIMSWAP_CONFIG_DIR`, else `$XDG_CONFIG_HOME/slimswap`, else
`~/.config/slimswap`). The C2PA SDK refuses self-signed end-entity certificates, so the local
pair is a small chain made with `cryptography`: a CA (kept only as a certificate; its private
key is thrown away once the signer is issued) and a signing certificate with what the C2PA
trust model asks of one (X.509 v3, critical KeyUsage digitalSignature, ExtendedKeyUsage
emailProtection + documentSigning, subject/authority key identifiers), ECDSA P-256 (ES256).
Validators show such a signature as valid but from an unverified (untrusted) issuer; a
certificate from a CA on the C2PA trust list removes that.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from slimswap import __version__
from slimswap.errors import UserError

log = logging.getLogger(__name__)

ENV_CERT = "SLIMSWAP_C2PA_CERT"
ENV_KEY = "SLIMSWAP_C2PA_KEY"
ENV_CONFIG_DIR = "SLIMSWAP_CONFIG_DIR"
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
DIGITAL_SOURCE_TYPE = IPTC + "compositeWithTrainedAlgorithmicMedia"
# IPTC source types that say "made or changed by a machine" (what verify counts as a label)
SYNTHETIC_SOURCE_TYPES = frozenset(
    IPTC + t
    for t in (
        "trainedAlgorithmicMedia",
        "compositeWithTrainedAlgorithmicMedia",
        "algorithmicMedia",
        "compositeSynthetic",
    )
)
MIME_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
}
DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # id-kp-documentSigning (RFC 9336)
CERT_FILE, KEY_FILE = "signer.pem", "signer.key"
# No thumbnail (it would re-encode the picture into the manifest) and nothing fetched over
# the network while reading: slimswap runs offline.
_SETTINGS = {
    "builder": {"thumbnail": {"enabled": False}},
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
}


def config_dir() -> Path:
    """slimswap's per-user configuration folder (not created here)."""
    if env := os.environ.get(ENV_CONFIG_DIR):
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "slimswap"


# ------------------------------------------------------------------ local credentials


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "slimswap local (self-signed)"),
        ]
    )


def make_local_chain(years: int = 10) -> tuple[bytes, bytes]:
    """(certificate chain PEM: signer then CA, signer private key PEM), freshly made."""
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=365 * years)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("slimswap local CA")
    no_usage = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(**{**no_usage, "key_cert_sign": True, "crl_sign": True}), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        x509.CertificateBuilder()
        .subject_name(_name("slimswap local signer"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**{**no_usage, "digital_signature": True}), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    chain = signer.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(
        serialization.Encoding.PEM
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return chain, key_pem


def ensure_local_credentials(folder: Path | None = None) -> tuple[Path, Path]:
    """The local signer's (certificate chain, key) paths, created on first use.

    Created atomically: both files are written into a fresh private temporary folder beside
    `folder`, which is then renamed to `folder`; a parallel first use that loses the race
    throws its pair away and uses the winner's. The key file is 0600.
    """
    folder = Path(folder) if folder is not None else config_dir() / "c2pa"
    cert, key = folder / CERT_FILE, folder / KEY_FILE
    if cert.is_file() and key.is_file():
        return cert, key
    if folder.exists():
        raise UserError(
            f"{folder} exists but lacks {CERT_FILE} or {KEY_FILE}; delete the folder to make a "
            "new local signing key, or pass --c2pa-cert/--c2pa-key"
        )
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".c2pa-", dir=folder.parent))  # mode 0700
    except OSError as err:
        raise UserError(f"cannot create the C2PA key folder {folder}: {err.strerror}") from None
    try:
        chain, key_pem = make_local_chain()
        fd = os.open(staging / KEY_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        (staging / CERT_FILE).write_bytes(chain)
        try:
            staging.rename(folder)
        except OSError:
            if not (cert.is_file() and key.is_file()):  # not a lost race: a real error
                raise
        log.info("created a local C2PA signing key in %s", folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cert, key


# ------------------------------------------------------------------ signing


@dataclass(frozen=True)
class Credentials:
    chain_pem: bytes
    key_pem: bytes
    alg: str  # es256 | es384 | es512 | ps256 | ed25519
    where: str  # for messages: which files

    @property
    def issuer(self) -> str:
        return x509.load_pem_x509_certificates(self.chain_pem)[0].issuer.rfc4514_string()


def _algorithm(key) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algs = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name in algs:
            return algs[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise UserError(
        f"unsupported C2PA signing key type {type(key).__name__}; use EC P-256/384/521, RSA or Ed25519"
    )


@lru_cache(maxsize=8)
def _load(cert: Path, key: Path) -> Credentials:
    try:
        chain, key_pem = cert.read_bytes(), key.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read C2PA credentials {err.filename}: {err.strerror}") from None
    where = f"{cert} + {key}"
    try:
        certs = x509.load_pem_x509_certificates(chain)
        private = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as err:
        raise UserError(
            f"C2PA credentials {where} are not a PEM certificate chain and an unencrypted PEM "
            f"key: {err}"
        ) from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if certs[0].public_key().public_bytes(
        serialization.Encoding.DER, public
    ) != private.public_key().public_bytes(serialization.Encoding.DER, public):
        raise UserError(f"C2PA key {key} does not belong to the first certificate in {cert}")
    return Credentials(chain, key_pem, _algorithm(private), where)


def load_credentials(cert: Path | None = None, key: Path | None = None) -> Credentials:
    """Explicit paths, else the environment, else the local signer (created if missing)."""
    if (cert is None) != (key is None):
        raise UserError("--c2pa-cert and --c2pa-key go together: give both or neither")
    if cert is None:
        env_cert, env_key = os.environ.get(ENV_CERT), os.environ.get(ENV_KEY)
        if bool(env_cert) != bool(env_key):
            raise UserError(f"set both {ENV_CERT} and {ENV_KEY}, or neither")
        if env_cert and env_key:
            cert, key = Path(env_cert), Path(env_key)
        else:
            cert, key = ensure_local_credentials()
    for path in (cert, key):
        if not Path(path).is_file():
            raise UserError(f"C2PA credential file not found: {path}")
    return _load(Path(cert).resolve(), Path(key).resolve())


def can_sign(path: Path) -> bool:
    return Path(path).suffix.lower() in MIME_TYPES


def _context():
    import c2pa

    return c2pa.Context(c2pa.Settings.from_dict(_SETTINGS))


@dataclass(frozen=True)
class OutputSigner:
    """Signs one output's final bytes: `sign_bytes` for images, `sign_file` for videos."""

    credentials: Credentials
    model: str
    title: str
    watermarks: tuple[str, ...] = ()

    def manifest(self) -> dict:
        return {
            "claim_generator_info": [{"name": "slimswap", "version": __version__}],
            "title": self.title,
            "assertions": [
                {
                    "label": "c2pa.actions",
                    "data": {
                        "actions": [
                            {
                                "action": "c2pa.created",
                                "digitalSourceType": DIGITAL_SOURCE_TYPE,
                                "softwareAgent": {"name": "slimswap", "version": __version__},
                                "description": "face swapped by slimswap (synthetic media)",
                                "parameters": {
                                    "model": self.model,
                                    "watermarks": list(self.watermarks),
                                },
                            }
                        ]
                    },
                }
            ],
        }

    def _sign(self, mime: str, source, dest) -> None:
        import c2pa

        info = c2pa.C2paSignerInfo(
            self.credentials.alg, self.credentials.chain_pem, self.credentials.key_pem, None
        )
        try:
            with (
                _context() as context,
                c2pa.Signer.from_info(info) as signer,
                c2pa.Builder(self.manifest(), context) as builder,
            ):
                builder.sign(signer, mime, source, dest)
        except c2pa.C2paError as err:
            raise UserError(
                f"C2PA signing of {self.title} failed with {self.credentials.where}: {err}"
            ) from err

    def sign_bytes(self, data: bytes, suffix: str) -> bytes:
        """An encoded image with the manifest embedded (nothing touches the disk)."""
        import io

        out = io.BytesIO()
        self._sign(MIME_TYPES[suffix.lower()], io.BytesIO(data), out)
        return out.getvalue()

    def sign_file(self, source: Path, dest: Path) -> None:
        """Write `source` with the manifest embedded to `dest`; no `dest` left on failure."""
        try:
            with open(source, "rb") as src, open(dest, "w+b") as dst:
                self._sign(MIME_TYPES[Path(source).suffix.lower()], src, dst)
        except BaseException:
            Path(dest).unlink(missing_ok=True)
            raise


def output_signer(
    output: Path,
    model: str,
    cert: Path | None = None,
    key: Path | None = None,
    watermarks: tuple[str, ...] = (),
) -> OutputSigner | None:
    """The signer for one output, or None (with a warning) for a container C2PA lacks.

    Loads the credentials now, so a bad key fails before any work starts.
    """
    if not can_sign(output):
        log.warning(
            "%s: C2PA content credentials cannot be embedded in %s files (use .mp4/.mov); "
            "the metadata label and the watermark are still written",
            output,
            Path(output).suffix,
        )
        return None
    return OutputSigner(load_credentials(cert, key), model, Path(output).name, watermarks)


# ------------------------------------------------------------------ reading


@dataclass
class C2paReport:
    """What c2pa-python's reader says about a file's content credentials."""

    present: bool = False
    state: str | None = None  # c2pa validation state: Invalid | Valid | Trusted
    issuer: str | None = None
    signer: str | None = None  # common name of the signing certificate
    generator: str | None = None
    digital_source_types: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # validation failure codes
    error: str | None = None  # the file's manifest could not be read at all

    @property
    def valid(self) -> bool:
        """The signature and the hash of the bytes check out (trusted issuer or not)."""
        return self.present and self.state in ("Valid", "Trusted")

    @property
    def trusted(self) -> bool:
        return self.present and self.state == "Trusted"

    @property
    def synthetic(self) -> bool:
        return any(t in SYNTHETIC_SOURCE_TYPES for t in self.digital_source_types)

    @property
    def label_present(self) -> bool:
        """A valid manifest that declares machine-made content: a C2PA synthetic label."""
        return self.valid and self.synthetic

    def to_json(self) -> dict:
        return {
            "present": self.present,
            "valid": self.valid,
            "trusted": self.trusted,
            "state": self.state,
            "issuer": self.issuer,
            "signer": self.signer,
            "generator": self.generator,
            "digital_source_types": self.digital_source_types,
            "failures": self.failures,
            "error": self.error,
        }


def _source_types(manifest: dict) -> list[str]:
    found = []
    for assertion in manifest.get("assertions", []):
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            for action in assertion.get("data", {}).get("actions", []):
                if dst := action.get("digitalSourceType"):
                    found.append(str(dst))
    return list(dict.fromkeys(found))


def read_c2pa(path: Path) -> C2paReport:
    """Read and validate the C2PA manifest store of a file with c2pa-python."""
    import c2pa

    path = Path(path)
    mime = MIME_TYPES.get(path.suffix.lower())
    if mime is None:
        return C2paReport()
    try:
        with (
            _context() as context,
            open(path, "rb") as stream,
            c2pa.Reader(mime, stream, context=context) as reader,
        ):
            state = reader.get_validation_state()
            manifest = reader.get_active_manifest() or {}
            results = reader.get_validation_results() or {}
    except c2pa.C2paError as err:
        if "ManifestNotFound" in type(err).__name__ or "not found" in str(err).lower():
            return C2paReport()
        return C2paReport(present=True, state="Invalid", error=str(err).splitlines()[0])
    signature = manifest.get("signature_info", {})
    generator = next(iter(manifest.get("claim_generator_info", [])), {})
    failures = [
        str(item.get("code"))
        for item in results.get("activeManifest", {}).get("failure", [])
        if item.get("code")
    ]
    return C2paReport(
        present=True,
        state=state,
        issuer=signature.get("issuer"),
        signer=signature.get("common_name"),
        generator=" ".join(str(generator.get(k, "")) for k in ("name", "version")).strip() or None,
        digital_source_types=_source_types(manifest),
        failures=failures,
    )


def manifest_json(path: Path) -> dict:
    """The full manifest store as c2pa-python reports it (for --json and tests)."""
    import c2pa

    mime = MIME_TYPES[Path(path).suffix.lower()]
    with (
        _context() as context,
        open(path, "rb") as stream,
        c2pa.Reader(mime, stream, context=context) as reader,
    ):
        return json.loads(reader.json())
