"""API v1 routes: candidates (to be filled in)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
