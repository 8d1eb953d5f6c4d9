" kflow filetype settings: 2-space indent, `#` comments, :KflowFmt runs `kflow fmt`.
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

" Format the buffer with `kflow fmt -`. The buffer is replaced only when kflow succeeds;
" a syntax error is shown as a message and the text is left alone.
if !exists("*s:KflowFmt")
  function! s:KflowFmt() abort
    if !executable("kflow")
      echohl WarningMsg | echomsg "kflow: `kflow` is not on PATH" | echohl None
      return
    endif
    let l:lines = getline(1, "$")
    let l:out = systemlist("kflow fmt -", l:lines)
    if v:shell_error != 0
      echohl ErrorMsg | echomsg "kflow fmt: " . join(l:out, " ") | echohl None
      return
    endif
    if l:out != l:lines
      let l:view = winsaveview()
      silent keepjumps %delete _
      call setline(1, l:out)
      call winrestview(l:view)
    endif
  endfunction
endif
command! -buffer KflowFmt call s:KflowFmt()

let b:undo_ftplugin = "setlocal commentstring< comments< formatoptions< expandtab< "
      \ . "shiftwidth< softtabstop< tabstop< textwidth< suffixesadd<"
      \ . " | delcommand KflowFmt"
