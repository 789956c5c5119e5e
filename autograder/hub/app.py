"""JupyterHub, patient with the formgraders: `python -m autograder.hub.app -f CONFIG`.

JupyterHub gives a managed service ten one-second tries to answer, then exits. A formgrader
loads nbgrader and the kit's grading configuration, which on a busy 2-core machine takes longer
than that; this hub waits for it as long as its process lives, up to SERVICE_START_TIMEOUT_S.
"""

import time

from jupyterhub.app import JupyterHub
from jupyterhub.objects import Server
from jupyterhub.utils import AnyTimeoutError

SERVICE_START_TIMEOUT_S = 120


class CourseHub(JupyterHub):
    async def start_service(self, service_name, service, ssl_context=None):
        if await super().start_service(service_name, service, ssl_context):
            return True
        if not service.managed or service.spawner is None:
            return False
        deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
        while time.monotonic() < deadline and await service.spawner.poll() is None:
            try:
                await Server.from_orm(service.orm.server).wait_up(http=True, timeout=5)
            except AnyTimeoutError:
                continue
            self.log.info("Service %s is up after all", service_name)
            return True
        return False


if __name__ == "__main__":
    CourseHub.launch_instance()
