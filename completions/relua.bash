# bash completion for relua. The candidates come from relua itself (`relua __complete`,
# lib/relua/cli/complete.lua): commands, options, tickets from the ledger, a recipe's
# phases after --from=, playbook ids. Installed by `make install` under
# share/bash-completion/completions/relua.

_relua() {
  local line=${COMP_LINE:0:$COMP_POINT}
  local -a words
  # Split what is before the cursor on blanks ('=' stays inside its word: --from=PHASE).
  read -r -a words <<< "$line"
  if [[ -z $line || $line == *[[:blank:]] ]]; then words+=(""); fi
  local cur=${words[${#words[@]}-1]}
  local prog=${words[0]}
  [[ $prog == */* ]] || prog=$(type -P "$prog" || echo relua)
  local c files=0
  local -a found=()
  while IFS= read -r c; do
    if [[ $c == :files ]]; then files=1; else found+=("$c"); fi
  done < <("$prog" __complete "${words[@]:1}" 2>/dev/null)
  COMPREPLY=()
  # bash splits the current word at '=': hand it back the part after the last one.
  local strip=""
  if [[ $cur == *=* && ${COMP_WORDS[COMP_CWORD]} != "$cur" ]]; then strip=${cur%=*}=; fi
  for c in "${found[@]}"; do COMPREPLY+=("${c#"$strip"}"); done
  if ((files)); then
    local f
    while IFS= read -r f; do COMPREPLY+=("$f"); done < <(compgen -f -- "$cur")
  fi
  if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]]; then compopt -o nospace 2>/dev/null; fi
  return 0
}
complete -o filenames -F _relua relua
