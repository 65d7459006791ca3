"""Export lmrec's leave-one-out split of Amazon Office with its knowledge graph for RecBole's KG models.

Runs in lmrec's venv. Writes, for ``--name NAME`` (default ``office-kg``)::

    <out>/NAME/NAME.{train,valid,test}.inter   export_split.py's benchmark files (lmrec's split, raw ids)
    <out>/NAME/NAME.kg                          head_id / relation_id / tail_id (the graph lmrec loads)
    <out>/NAME/NAME.link                        item_id -> entity_id (Office links items by ASIN)
    <out>/NAME/NAME.yaml                        export_split.py's config plus the kg / link columns

The graph is the one ``lmrec.data.load_recbole`` attaches (duplicates and dangling triples already
dropped, see its report); spaces inside entity names become ``_`` (RecBole tokens). The split is
``lmrec.data.leave_one_out`` of the loaded interactions, as ``benchmarks/kg_bench.py loo`` uses.

Example::

    .venv/bin/python benchmarks/recbole/export_kg.py
    benchmarks/.venv-recbole/bin/python benchmarks/recbole/run_recbole.py --protocol bench \\
        --data-dir benchmarks/out/recbole/splits/office-kg --models KGAT KGCN CKE RippleNet --tag kg
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from export_split import DEFAULT_OUT, export_split

from lmrec.data import leave_one_out, load_recbole

LOG = logging.getLogger("export_kg")
DEFAULT_OFFICE = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "amazon-office"


def _token(value: str) -> str:
    return "_".join(str(value).split())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--office", type=Path, default=DEFAULT_OFFICE, help="directory of Office.inter/.item/.kg")
    p.add_argument("--name", default="office-kg")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    data = load_recbole(args.office)
    if data.kg is None:
        raise SystemExit(f"{args.office} has no Office.kg")
    split = leave_one_out(data.interactions)
    export_split(split, args.out, args.name)
    directory = args.out / args.name
    kg_path, link_path = directory / f"{args.name}.kg", directory / f"{args.name}.link"
    with kg_path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("head_id:token\trelation_id:token\ttail_id:token\n")
        for h, r, t in data.kg.triples.itertuples(index=False, name=None):
            fh.write(f"{_token(h)}\t{_token(r)}\t{_token(t)}\n")
    with link_path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("item_id:token\tentity_id:token\n")
        for item, entity in data.kg.links.items():
            fh.write(f"{item}\t{_token(entity)}\n")
    yaml_path = directory / f"{args.name}.yaml"
    text = yaml_path.read_text().replace(
        "  inter: [", "  kg: [head_id, relation_id, tail_id]\n  link: [item_id, entity_id]\n  inter: ["
    )
    yaml_path.write_text(
        text
        + "HEAD_ENTITY_ID_FIELD: head_id\nTAIL_ENTITY_ID_FIELD: tail_id\n"
        + "RELATION_ID_FIELD: relation_id\nENTITY_ID_FIELD: entity_id\n"
    )
    LOG.info(
        "wrote %s (%d triples) and %s (%d links); split %s",
        kg_path,
        len(data.kg),
        link_path,
        len(data.kg.links),
        split.sizes(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
