"""One exception type per layer; vendor errors are wrapped, never leaked."""


class AlgoError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(AlgoError):
    """A setting from the environment is missing or malformed."""


class StackError(AlgoError):
    """A local service could not be fetched, started, stopped or reached."""


class CodecError(AlgoError):
    """A message could not be encoded or decoded against its Avro schema."""


class RegistryError(AlgoError):
    """The schema registry refused a request or could not be reached."""


class ProvisionError(AlgoError):
    """Topics, schemas or migrations could not be provisioned."""


class MigrationError(ProvisionError):
    """A SQL migration failed or the migrations on disk disagree with the database."""


class PersistenceError(AlgoError):
    """A row could not be written to the vault."""


class DataError(AlgoError):
    """Input market data (a CSV or a bundled dataset) is unusable."""


class ModelError(AlgoError):
    """A policy could not be trained, saved, registered, loaded or evaluated."""


class ServiceUnavailable(AlgoError):
    """A service (schema registry, Postgres, Kafka) is unreachable, timed out or answered 5xx.

    Transient: the message being handled is fine, so it is retried once the service is back,
    never dead-lettered."""

    def __init__(self, service: str, detail: str) -> None:
        super().__init__(f"{service} is unavailable: {detail}")
        self.service = service
        self.detail = detail

    def __reduce__(self):  # keeps the two-argument constructor picklable (threads, executors)
        return type(self), (self.service, self.detail)
