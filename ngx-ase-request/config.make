# nginx ./configure: the cargo rule for the modules' static library (written once for the
# three ngx-ase modules; see ../ngx-ase-static/auto/ngx_ase).
. "$ngx_addon_dir/../ngx-ase-static/auto/ngx_ase"
ngx_ase_make
