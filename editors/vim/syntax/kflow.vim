" Vim syntax file
" Language:    kflow (typed declarative workflow language)
" Filenames:   *.kflow

if exists("b:current_syntax")
  finish
endif

let s:cpo_save = &cpo
set cpo&vim

syn case match
syn iskeyword @,48-57,_

" Comments: `##` doc comments above declarations, `#` to end of line.
syn keyword kflowTodo contained TODO FIXME XXX NOTE
syn match kflowComment "#.*$" contains=kflowTodo,@Spell
syn match kflowDocComment "##.*$" contains=kflowTodo,@Spell

" Declarations and their names.
syn keyword kflowInclude module import as
syn keyword kflowDeclare let const
syn keyword kflowStructure type enum nextgroup=kflowTypeName skipwhite
syn keyword kflowDefine node workflow nextgroup=kflowFuncName skipwhite
syn match kflowTypeName "\h\w*" contained
syn match kflowFuncName "\h\w*" contained

" Keywords.
syn keyword kflowConditional if then else when
syn keyword kflowRepeat for in yield
syn keyword kflowException try catch fail
syn keyword kflowStatement return parallel wait sleep emit checkpoint
syn keyword kflowStatement transaction nextgroup=kflowTxKind skipwhite
syn keyword kflowOperatorWord and or not
syn keyword kflowBoolean true false
syn keyword kflowNull null

" Contextual keywords: `saga`/`2pc` after `transaction`, `timeout` after `wait "..."`.
syn match kflowTxKind "\<\(saga\|2pc\)\>" contained
syn match kflowWaitTimeout "\(\<wait\s\+\"[^"]*\"\s\+\)\@<=timeout\>"

" Types and builtins.
syn keyword kflowType int float str bool bytes duration json
syn match kflowType "\<\(list\|map\)\ze\s*\["
syn match kflowBuiltin "\<\(len\|str\|int\|float\|bool\|lower\|upper\|trim\|split\|join\|contains\|keys\|values\|sum\|min\|max\|abs\|round\|range\|sorted\|uuid\|now\|random\|env\|secret\|exponential\|constant\)\ze\s*("
syn match kflowCall "\<\u\w*\ze\s*("
syn match kflowTypeRef "\<\u\w*\>\(\s*(\)\@!"

" Attributes.
syn match kflowAttribute "@\h\w*"

" Numbers and durations.
" (for matches at the same column Vim prefers the last defined: most specific last)
syn match kflowNumber "\<\d[0-9_]*\>"
syn match kflowFloat "\<\d[0-9_]*\.\d[0-9_]*\([eE][+-]\=\d\+\)\=\>"
syn match kflowFloat "\<\d[0-9_]*[eE][+-]\=\d\+\>"
syn match kflowDuration "\<\d[0-9_]*\(ms\|s\|m\|h\|d\)\>"

" Strings, escapes and ${...} interpolation.
syn match kflowEscape contained "\\\(u{\x\{1,6}}\|[nrt\"\\$0]\)"
syn region kflowInterpolation contained matchgroup=kflowInterpDelim start="\${" end="}"
      \ contains=kflowNumber,kflowFloat,kflowDuration,kflowBoolean,kflowNull,kflowOperatorWord,kflowBuiltin,kflowCall,kflowTypeRef
syn region kflowString start=+"+ skip=+\\\\\|\\"+ end=+"+ oneline
      \ contains=kflowEscape,kflowInterpolation,@Spell
syn region kflowString start=+"""+ end=+"""+ keepend
      \ contains=kflowEscape,kflowInterpolation,@Spell

syn match kflowOperator "->\|??\|?\.\|==\|!=\|<=\|>=\|//\|[-+*/%<>=?]"

hi def link kflowTodo Todo
hi def link kflowComment Comment
hi def link kflowDocComment SpecialComment
hi def link kflowInclude Include
hi def link kflowDeclare Keyword
hi def link kflowStructure Structure
hi def link kflowDefine Define
hi def link kflowTypeName Type
hi def link kflowFuncName Function
hi def link kflowConditional Conditional
hi def link kflowRepeat Repeat
hi def link kflowException Exception
hi def link kflowStatement Statement
hi def link kflowOperatorWord Operator
hi def link kflowBoolean Boolean
hi def link kflowNull Constant
hi def link kflowTxKind Keyword
hi def link kflowWaitTimeout Keyword
hi def link kflowType Type
hi def link kflowBuiltin Function
hi def link kflowCall Function
hi def link kflowTypeRef Type
hi def link kflowAttribute PreProc
hi def link kflowDuration Number
hi def link kflowFloat Float
hi def link kflowNumber Number
hi def link kflowEscape SpecialChar
hi def link kflowInterpDelim Delimiter
hi def link kflowString String
hi def link kflowOperator Operator

let b:current_syntax = "kflow"

let &cpo = s:cpo_save
unlet s:cpo_save
