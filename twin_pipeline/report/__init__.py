"""report.html beside every twin (`html.write_report`) and the pictures it shares with the Dagster asset pages
(`plots`): matplotlib, SVG (PNG for the Dagster UI) inlined as base64 so the page is one file that opens anywhere."""

from twin_pipeline.report.html import write_report

__all__ = ["write_report"]
