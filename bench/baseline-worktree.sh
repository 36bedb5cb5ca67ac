#!/usr/bin/env bash
# A checkout of an older commit that `npm run bench:train -- --baseline DIR` can run our side from:
# a git worktree whose node_modules links to this checkout's packages, except the workspace
# packages (@medsyn/*), whose relative links must point into the worktree's own libs/. Generated
# code (gen/) is copied, and so are this checkout's bench/train.ts and bench/ort-profile.ts, so
# both sides are timed by the same harness.
#
#   bash bench/baseline-worktree.sh <commit> <dir>      # then: npm run bench:train -- --baseline <dir>
#   git worktree remove --force <dir>                   # when done
# (--profile from such a checkout needs a Trainer with endProfiling: 25752dd on.)
set -euo pipefail
commit=${1:?usage: baseline-worktree.sh <commit> <dir>}
dir=${2:?usage: baseline-worktree.sh <commit> <dir>}
here=$(cd "$(dirname "$0")/.." && pwd)

git -C "$here" worktree add --detach "$dir" "$commit"
mkdir -p "$dir/node_modules"
for entry in "$here"/node_modules/* "$here"/node_modules/.bin; do
  name=$(basename "$entry")
  [ "$name" = "@medsyn" ] || ln -sfn "$entry" "$dir/node_modules/$name"
done
cp -a "$here/node_modules/@medsyn" "$dir/node_modules/@medsyn"
(cd "$here" && git ls-files --others --ignored --exclude-standard --directory libs services | grep '/gen/$') | while read -r gen; do
  mkdir -p "$dir/$gen" && cp -a "$here/$gen." "$dir/$gen"
done
cp "$here/bench/train.ts" "$here/bench/ort-profile.ts" "$dir/bench/"
echo "baseline checkout of $(git -C "$dir" log --oneline -1) in $dir"
