"""The reliability suite reuses the e2e project fixture (a demo project per test)."""

from tests.e2e.conftest import Project, project

__all__ = ["Project", "project"]
