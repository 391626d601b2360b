#!/usr/bin/env python3
"""Merge the motion tracks of one person into one id, for `vigia eval-reid`.

A person who walks out of view and back in has several motion tracks; scored per track, their
return counts as a different person. With a people file (see `exit_return.py --people`) this
writes the tracks again with every listed person under one id (1000, 1001, ... in the order of
the file), so `eval-reid` scores recognition across the absences:

    tools/reid/people_mot.py tools/reid/vtest.tracks.txt tools/reid/vtest.people.txt > people.txt
    vigia eval-reid ../shared/data/video/vtest.avi --tracks people.txt --from-frame 401
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from exit_return import read_people  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: people_mot.py TRACKS.txt PEOPLE.txt > MERGED.txt")
    tracks, people_file = sys.argv[1:]
    people = read_people(people_file)
    owner = {}
    for i, (name, parts) in enumerate(people.items()):
        print(f"{1000 + i}: {name}", file=sys.stderr)
        for tid, a, b in parts:
            owner.setdefault(tid, []).append((1000 + i, a, b))
    seen = set()
    with open(tracks) as f:
        for n, line in enumerate(f, 1):
            p = line.rstrip("\n").split(",")
            if len(p) < 6:
                continue
            try:
                frame, tid = int(float(p[0])), int(float(p[1]))
            except ValueError:
                sys.exit(f"{tracks}:{n}: not a MOTChallenge line: {line.strip()}")
            for new, a, b in owner.get(tid, []):
                if a is None or a <= frame <= b:
                    tid = new
            if (frame, tid) in seen:
                sys.exit(f"{tracks}:{n}: frame {frame} has two tracks of person {tid}; "
                         f"check {people_file}")
            seen.add((frame, tid))
            p[1] = str(tid)
            print(",".join(p))


if __name__ == "__main__":
    main()
