"""Apicurio Registry 3 (its ccompat API is the Confluent schema-registry API), schemas stored in
Postgres (database `registry`). The database password reaches the JVM through its environment
(APICURIO_DATASOURCE_PASSWORD), not its command line, which any local user can read."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from ops.stack import fetch
from ops.stack.fetch import APICURIO_VERSION, JVM_COMMON, REGISTRY_JAVA, fetch_apicurio
from ops.stack.process import Progress, port_open, require_loopback
from ops.stack.service import Service

REGISTRY_HEAP = ("-Xms64m", "-Xmx448m")
# The registry is low-traffic (serializers cache schemas): the C1 compiler alone starts it ~30% faster.
REGISTRY_JIT = ("-XX:TieredStopAtLevel=1",)
# Quarkus maps a property to its upper-case, underscored name in the environment.
PASSWORD_VARIABLE = "APICURIO_DATASOURCE_PASSWORD"


class Registry(Service):
    name = "registry"
    start_timeout = 180.0
    stop_timeout = 30.0

    def endpoint(self) -> str:
        return self.settings.schema_registry_url

    def host_port(self) -> tuple[str, int]:
        return self.settings.registry_host_port

    def management_port(self) -> int:
        """Quarkus' management interface (health, metrics) is on 9000 by default: 0 lets the OS pick."""
        return 0

    def ports(self) -> list[int]:
        return [self.host_port()[1]]

    def marker(self) -> str:
        return f"-Dalgo.stack.registry={self.dir}"

    def system_properties(self) -> dict[str, str]:
        host, port = self.host_port()
        host = "127.0.0.1" if host == "localhost" else host
        pg_host, pg_port = self.settings.postgres_host_port
        user = self.settings.postgres_user_password_db[0]
        return {
            "quarkus.http.host": host,
            "quarkus.http.port": str(port),
            "quarkus.management.host": host,
            "quarkus.management.port": str(self.management_port()),
            "apicurio.storage.kind": "sql",
            "apicurio.storage.sql.kind": "postgresql",
            "apicurio.datasource.url": f"jdbc:postgresql://{pg_host}:{pg_port}/registry",
            "apicurio.datasource.username": user,
            "apicurio.datasource.jdbc.initial-size": "2",
            "apicurio.datasource.jdbc.min-size": "2",
            "apicurio.datasource.jdbc.max-size": "20",
            # deleting subjects/versions through ccompat maps onto these (all default to false)
            "apicurio.rest.deletion.group.enabled": "true",
            "apicurio.rest.deletion.artifact.enabled": "true",
            "apicurio.rest.deletion.artifact-version.enabled": "true",
            "quarkus.http.access-log.enabled": "false",
            "quarkus.log.console.format": "%d{yyyy-MM-dd HH:mm:ss} %p [%c{3.}] (%t) %m%n",
        }

    def environment(self) -> dict[str, str]:
        return {PASSWORD_VARIABLE: self.settings.postgres_user_password_db[1]}

    def prepare(self, progress: Progress) -> None:
        require_loopback(self.host_port()[0], "SCHEMA_REGISTRY_URL")
        with ThreadPoolExecutor(max_workers=1) as pool:  # the Java 21 runtime and the app, side by side
            java = pool.submit(fetch.java, self.settings, REGISTRY_JAVA, progress)
            self.jar = fetch_apicurio(self.settings, progress)
            self.java = java.result()
        self.dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        jar = getattr(self, "jar", None) or fetch_apicurio(self.settings)
        props = [f"-D{key}={value}" for key, value in self.system_properties().items()]
        java = getattr(self, "java", None) or fetch.java(self.settings, REGISTRY_JAVA)
        flags = [*REGISTRY_HEAP, *REGISTRY_JIT, *JVM_COMMON]
        return [java, *self.cds_flags(java, jar, *flags), *flags, self.marker(), *props, "-jar", str(jar)]

    def probe(self, timeout: float = 2.0) -> tuple[bool, str]:
        host, port = self.host_port()
        if not port_open(host, port):
            return False, f"nothing listens on {host}:{port}"
        url = self.settings.schema_registry_url.rstrip("/") + "/subjects"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                body = response.read()
                code = response.status
        except urllib.error.HTTPError as error:
            return False, f"GET {url}: HTTP {error.code}"
        except (OSError, ValueError) as error:
            return False, f"GET {url}: {error}"
        if code != 200:
            return False, f"GET {url}: HTTP {code}"
        try:
            count = len(json.loads(body))
        except ValueError:
            return False, f"GET {url}: not JSON"
        return True, f"Apicurio Registry {APICURIO_VERSION}, {count} subjects, schemas in Postgres (registry)"
