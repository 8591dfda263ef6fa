"""`kbb status`: where the workspace stands (filled in below)."""


def arguments(parser):
    parser.add_argument("--json", action="store_true", help="one JSON document")


def main(ws, args):
    return 0
