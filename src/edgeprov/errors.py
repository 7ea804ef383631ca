"""The one exception tree of edgeprov.

Every error knows its HTTP status, its numeric wire ``errorCode`` (whose first three digits
are the status, as the provisioning clients assume) and the hub's symbolic error name. The
wire adapters (``api``, ``mqtt``, ``cli``) map these once to their own shapes; domain code only
raises them.

    EdgeprovError
    ├── BadRequest                                    400 400004 ArgumentInvalid
    │   ├── InvalidRegistrationId                     400 400004
    │   ├── InvalidTwin                               400 400004
    │   ├── InvalidQuery                              400 400004
    │   ├── InvalidConfigurationTargetCondition       400 400401 InvalidConfigurationTargetCondition
    │   ├── InvalidConfigurationContent               400 400402 InvalidConfigurationContent
    │   ├── CannotModifyImmutableConfigurationContent 400 400403 CannotModifyImmutableConfigurationContent
    │   ├── InvalidConfigurationCustomMetricsQuery    400 400404 InvalidConfigurationCustomMetricsQuery
    │   └── MessageTooLarge                           413 413001
    ├── Unauthorized                                  401 401002 IotHubUnauthorizedAccess
    ├── Forbidden                                     403 403001
    │   └── QueueDepthExceeded                        403 403002 DeviceMaximumQueueDepthExceeded
    ├── NotFound                                      404 404000
    │   ├── EnrollmentNotFound                        404 404201
    │   ├── RegistrationNotFound                      404 404202
    │   ├── OperationNotFound                         404 404204
    │   ├── LinkedHubNotFound                         404 404205
    │   ├── DeviceNotFound                            404 404001 DeviceNotFound
    │   ├── ModuleNotFound                            404 404010 ModuleNotFound
    │   ├── ConfigurationNotFound                     404 404301 ConfigurationNotFound
    │   └── DeviceNotOnline                           404 404103 DeviceNotOnline
    ├── MethodNotAllowed                              405 405000
    ├── Conflict                                      409 409000
    │   ├── DeviceAlreadyExists                       409 409001 DeviceAlreadyExists
    │   ├── ModuleAlreadyExists                       409 409301 ModuleAlreadyExistsOnDevice
    │   └── ConfigurationAlreadyExists                409 409401 ConfigurationAlreadyExists
    ├── PreconditionFailed                            412 412002 PreconditionFailed
    ├── UnsupportedMediaType                          415 415000
    ├── Throttled                                     429 429001 ThrottlingException
    ├── InternalError                                 500 500000 ServerError
    ├── GatewayTimeout                                504 504101 GatewayTimeout
    └── DeviceRuntimeError                            the device runtime's own failures (CLI only, never on the wire)
        ├── ConfigInvalid                             a configuration mistake: its file, its line, what to write instead
        ├── ProvisioningRefused                       the provisioning service said no: its status, errorCode, reason
        ├── ServiceUnreachable                        no usable answer: network, TLS, timeout, 5xx, 429
        └── IdentityRejected                          the hub refused the device's identity (unknown, disabled, key)
"""

from __future__ import annotations

from typing import ClassVar


class EdgeprovError(Exception):
    """Base of every error edgeprov reports to a caller."""

    status: ClassVar[int] = 500
    code: ClassVar[int] = 500000
    name: ClassVar[str] = "ServerError"

    def __init__(self, message: str, *, info: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.info = info or {}


class BadRequest(EdgeprovError):
    status, code, name = 400, 400004, "ArgumentInvalid"


class InvalidRegistrationId(BadRequest):
    pass


class InvalidTwin(BadRequest):
    pass


class InvalidQuery(BadRequest):
    """A query (or target condition) that does not parse; the message says where and what was expected."""


class InvalidConfigurationTargetCondition(BadRequest):
    code, name = 400401, "InvalidConfigurationTargetCondition"


class InvalidConfigurationContent(BadRequest):
    code, name = 400402, "InvalidConfigurationContent"


class CannotModifyImmutableConfigurationContent(BadRequest):
    code, name = 400403, "CannotModifyImmutableConfigurationContent"


class InvalidConfigurationCustomMetricsQuery(BadRequest):
    code, name = 400404, "InvalidConfigurationCustomMetricsQuery"


class MessageTooLarge(BadRequest):
    status, code, name = 413, 413001, "MessageTooLarge"


class Unauthorized(EdgeprovError):
    status, code, name = 401, 401002, "IotHubUnauthorizedAccess"


class Forbidden(EdgeprovError):
    status, code, name = 403, 403001, "Forbidden"


class QueueDepthExceeded(Forbidden):
    code, name = 403002, "DeviceMaximumQueueDepthExceeded"


class NotFound(EdgeprovError):
    status, code, name = 404, 404000, "NotFound"


class EnrollmentNotFound(NotFound):
    code = 404201


class RegistrationNotFound(NotFound):
    code = 404202


class OperationNotFound(NotFound):
    code = 404204


class LinkedHubNotFound(NotFound):
    code = 404205


class DeviceNotFound(NotFound):
    code, name = 404001, "DeviceNotFound"


class ModuleNotFound(NotFound):
    code, name = 404010, "ModuleNotFound"


class ConfigurationNotFound(NotFound):
    code, name = 404301, "ConfigurationNotFound"


class DeviceNotOnline(NotFound):
    code, name = 404103, "DeviceNotOnline"


class MethodNotAllowed(EdgeprovError):
    status, code, name = 405, 405000, "MethodNotAllowed"


class Conflict(EdgeprovError):
    status, code, name = 409, 409000, "Conflict"


class DeviceAlreadyExists(Conflict):
    code, name = 409001, "DeviceAlreadyExists"


class ModuleAlreadyExists(Conflict):
    code, name = 409301, "ModuleAlreadyExistsOnDevice"


class ConfigurationAlreadyExists(Conflict):
    code, name = 409401, "ConfigurationAlreadyExists"


class PreconditionFailed(EdgeprovError):
    status, code, name = 412, 412002, "PreconditionFailed"


class UnsupportedMediaType(EdgeprovError):
    status, code, name = 415, 415000, "UnsupportedMediaType"


class Throttled(EdgeprovError):
    status, code, name = 429, 429001, "ThrottlingException"


class InternalError(EdgeprovError):
    pass


class GatewayTimeout(EdgeprovError):
    status, code, name = 504, 504101, "GatewayTimeout"


class DeviceRuntimeError(EdgeprovError):
    pass


class ConfigInvalid(DeviceRuntimeError):
    """A mistake in a configuration file, located so the user can fix it without guessing."""

    def __init__(self, message: str, *, path: object = None, line: int | None = None, hint: str | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.hint = hint
        super().__init__(located(message, self.path, line, hint))


def located(message: str, path: str | None, line: int | None, hint: str | None) -> str:
    """``file, line N: message`` and, when there is one, what to write instead."""
    where = f"{path}, line {line}: " if path and line else f"{path}: " if path else ""
    return f"{where}{message}" + (f"\n  write instead: {hint}" if hint else "")


class ProvisioningRefused(DeviceRuntimeError):
    def __init__(self, message: str, *, http_status: int, error_code: int | None = None) -> None:
        self.http_status = http_status
        self.error_code = error_code
        code = f", errorCode {error_code}" if error_code is not None else ""
        super().__init__(f"the provisioning service refused the registration (HTTP {http_status}{code}): {message}")
        self.reason = message


class ServiceUnreachable(DeviceRuntimeError):
    pass


class IdentityRejected(DeviceRuntimeError):
    pass
