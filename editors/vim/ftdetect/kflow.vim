" kflow workflow files
autocmd BufRead,BufNewFile *.kflow setfiletype kflow
