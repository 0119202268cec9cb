"""What the annotated cell types alone allow on SNARE (data/snare_mouse_cortex), for
experiments/results/README.md: each test cell predicted by the training mean of its cell
type (an oracle: it reads the test cells' labels). Same targets, filters and seed-0
random 70/15/15 cells as translation_snare_random (numpy permutation, not crossomics'
split). Needs scripts/requirements-fixtures.txt; about a minute."""
import csv, gzip, numpy as np, scipy.io, scipy.sparse as sp
from sklearn.metrics import roc_auc_score
from pathlib import Path
d=str(Path(__file__).resolve().parent.parent/'data/snare_mouse_cortex')+'/'
def load(f,n):
    X=scipy.io.mmread(gzip.open(d+f)).tocsr().astype(np.float32)
    return X if X.shape[0]==n else X.T.tocsr()
cells=list(csv.DictReader(open(d+'cells.tsv'),delimiter='\t')); n=len(cells)
y=np.unique([c['cell_type'] for c in cells],return_inverse=True)[1]
R=load('rna_counts.mtx.gz',n); A=load('atac_counts.mtx.gz',n)
perm=np.random.default_rng(0).permutation(n); tr=perm[:int(.7*n)]; te=perm[int(.85*n):]
keep_g=np.asarray((R[tr]>0).sum(0)).ravel()>=10; keep_p=np.asarray((A[tr]>0).sum(0)).ravel()>=10
R=R[:,keep_g]; B=(A[:,keep_p]>0).astype(np.float32)
lib=np.asarray(R.sum(1)).ravel(); t=np.median(lib[tr]); s=np.maximum(lib/t,1e-6)
L=sp.diags(1/s)@R; L=L.tocsr(); L.data=np.log1p(L.data); L=L.toarray(); B=B.toarray()
def per_feature_pearson(T,P):
    Tc=T-T.mean(0); Pc=P-P.mean(0); den=np.sqrt((Tc**2).sum(0)*(Pc**2).sum(0)); ok=den>0
    return ((Tc*Pc).sum(0)[ok]/den[ok]).mean()
def per_peak_auroc(T,P):
    v=[roc_auc_score(T[:,j],P[:,j]) for j in range(T.shape[1]) if 0<T[:,j].sum()<T.shape[0] and P[:,j].std()>0]
    return np.mean(v)
for name,lab in [('cell_type (15)',y)]:
    mr=np.stack([L[tr][lab[tr]==k].mean(0) for k in range(lab.max()+1)])
    ma=np.stack([B[tr][lab[tr]==k].mean(0) for k in range(lab.max()+1)])
    pr=mr[lab[te]]; pa=ma[lab[te]]
    print(name,'ATAC->RNA per-gene Pearson',round(per_feature_pearson(L[te],pr),4),'RMSE',round(np.sqrt(((L[te]-pr)**2).mean()),4))
    print(name,'RNA->ATAC per-peak AUROC',round(per_peak_auroc(B[te],pa),4), 'flattened AUROC', round(roc_auc_score(B[te].ravel(),pa.ravel()),4))
print('gene-mean RMSE',round(np.sqrt(((L[te]-L[tr].mean(0))**2).mean()),4))
