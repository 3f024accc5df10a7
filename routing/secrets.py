"""Receiver settings and their secrets, read from the environment or from files.

A routing file names where each secret lives and never holds the secret itself,
so it can be committed and reviewed. Three spellings are accepted for a secret
field such as ``routing_key``:

    routing_key: ${ENV:PD_ROUTING_KEY}       # an environment variable
    routing_key_env: PD_ROUTING_KEY          # the same, as its own key
    routing_key_file: /run/secrets/pd-key    # a file, such as a mounted secret

A literal value is rejected. The values become pydantic ``SecretStr``, whose
repr and ``str`` show ``**********``. The environment comes from the validation
context (``{"environ": ...}``) when given, so tests and ``routes test`` can pass
their own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

_ENV_REFERENCE = re.compile(r"^\$\{ENV:([A-Za-z_][A-Za-z0-9_]*)\}$")
_FILE_REFERENCE = re.compile(r"^\$\{FILE:(.+)\}$")


def environ_of(info: ValidationInfo) -> Mapping[str, str]:
    context = info.context if isinstance(info.context, dict) else {}
    environ = context.get("environ")
    return environ if environ is not None else os.environ


def _placeholders(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and bool(info.context.get("placeholders"))


def resolve_secret(value: object, name: str, info: ValidationInfo) -> object:
    """Resolve an ``${ENV:NAME}`` or ``${FILE:path}`` reference to the secret text.

    With ``{"placeholders": True}`` in the validation context, a variable that
    is not set or a file that cannot be read gives a placeholder under the
    reserved ``.invalid`` domain instead of an error, for dry runs that send
    nothing.
    """
    if isinstance(value, SecretStr) or value is None:
        return value
    if not isinstance(value, str):
        return value
    env_match = _ENV_REFERENCE.match(value.strip())
    if env_match:
        variable = env_match.group(1)
        secret = environ_of(info).get(variable)
        if not secret and _placeholders(info):
            return f"https://placeholder.invalid/{variable}"
        if not secret:
            raise ValueError(
                f"environment variable {variable} is not set or empty: export it "
                f"before starting burnrate, it holds {name}"
            )
        return secret
    file_match = _FILE_REFERENCE.match(value.strip())
    if file_match:
        path = Path(file_match.group(1))
        if _placeholders(info) and not path.is_file():
            return f"https://placeholder.invalid/{path.name}"
        return _read_secret_file(path, name)
    raise ValueError(
        f"{name} is written in the file: move the secret out and write "
        f"${{ENV:NAME}}, set {name}_env: NAME or {name}_file: PATH"
    )


def _read_secret_file(path: Path, name: str) -> str:
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ValueError(
            f"cannot read {name} from {path}: {error.strerror}: check the path "
            "and its permissions"
        ) from None
    if not secret:
        raise ValueError(f"{path} is empty: write {name} into it")
    return secret


def secret_validator(*names: str) -> Any:
    """Return a field validator that resolves the secret references of ``names``."""

    def resolve(cls: type, value: object, info: ValidationInfo) -> object:
        return resolve_secret(value, info.field_name or "secret", info)

    return field_validator(*names, mode="before")(resolve)


class ReceiverSettings(BaseModel):
    """Settings every receiver has; subclasses list their secret fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    #: Field names that hold secrets and accept the ``_env`` and ``_file`` forms.
    secret_fields: ClassVar[tuple[str, ...]] = ()

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    send_resolved: bool = True
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    # A CA bundle to trust instead of the system store, e.g. for a TLS proxy.
    ca_file: Path | None = None
    concurrency: int = Field(default=4, ge=1, le=64)

    @model_validator(mode="before")
    @classmethod
    def _secret_sources(cls, data: Any) -> Any:
        """Turn ``NAME_env`` and ``NAME_file`` keys into references on ``NAME``."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name in cls.secret_fields:
            env = data.pop(f"{name}_env", None)
            file = data.pop(f"{name}_file", None)
            if env is not None and file is not None:
                raise ValueError(f"set only one of {name}_env and {name}_file")
            if (env is not None or file is not None) and name in data:
                source = f"{name}_env" if env is not None else f"{name}_file"
                raise ValueError(f"set only one of {name} and {source}")
            if env is not None:
                data[name] = f"${{ENV:{env}}}"
            elif file is not None:
                data[name] = f"${{FILE:{file}}}"
        return data

    def secret_values(self) -> list[str]:
        """Return the plain secret values, for the redactor."""
        values = []
        for name in self.secret_fields:
            secret = getattr(self, name, None)
            if isinstance(secret, SecretStr):
                values.append(secret.get_secret_value())
        return values
