" kflow filetype settings: 2-space indent, `#` comments, `gq` formats with `kflow fmt`.
if exists("b:did_ftplugin")
  finish
endif
let b:did_ftplugin = 1

setlocal commentstring=#\ %s
setlocal comments=:##,:#
setlocal formatoptions-=t formatoptions+=croql
setlocal expandtab shiftwidth=2 softtabstop=2 tabstop=2
setlocal textwidth=100
setlocal suffixesadd=.kflow
if executable("kflow")
  setlocal formatprg=kflow\ fmt\ -
endif

let b:undo_ftplugin = "setlocal commentstring< comments< formatoptions< expandtab< "
      \ . "shiftwidth< softtabstop< tabstop< textwidth< suffixesadd< formatprg<"
