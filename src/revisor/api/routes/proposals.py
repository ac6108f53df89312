"""API v1 routes: proposals (to be filled in)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
