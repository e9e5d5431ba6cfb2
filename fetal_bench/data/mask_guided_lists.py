"""The mask-guided authors' 60 HC18 training images (their README recipe), by HC18 name.

The authors' repository (github.com/13204942/Diffusion-based_DA_Fetal_Ultrasound_Segmentation,
commit 200ae09930581435d9febc67d160ce344c5b169c) trains its diffusion model on 20 HC18 images per
trimester, ``code/FT_SD/data/{1,2,3}/image/NAME.png`` with outlines
``code/FT_SD/data/{1,2,3}/mask/NAME_Annotation.png``. Every one of the 60 images, and its outline, is
pixel-identical to an HC18 training image and its annotation. The names are not HC18's: ``N`` in
``N_HC`` is the 1-based row of the image in HC18's ``training_set_pixel_size_and_HC.csv`` (``314_HC``
is row 314, HC18 ``247_HC``; ``997_HC`` is ``803_HC``). That rule gives 50 of the 60; the other 10
belong to exams with several images (``014``, ``026``, ``299``, ``725``, ``739``, ``751``, ``773``,
``796``), where the authors' file holds another image of the same exam than the CSV row names
(``18_HC`` is row 18, ``014_HC``, but its pixels are ``014_3HC``'s): they are listed here by their
pixels. (``482_2HC`` is row 482, ``392_2HC``, whose pixels and outline HC18 repeats as ``392_HC``.)

Each entry pins the sha256 of the authors' decoded image and outline (``"<rows>x<cols>:"`` and the
8-bit gray pixels, row-major), so a copy of HC18 is checked against the authors' files without
them (``tests/test_mask_guided_images.py`` on the shared HC18 copy). Only names and digests are
kept here: no image of the authors' repository is redistributed.

Trimester: the authors' folder. Their head circumferences (HC18's CSV) are 44.3-73.7 mm (first),
161.7-199.3 mm (second) and 272.1-335.0 mm (third): the package's < 100 / < 260 mm rule gives
the same trimester for all 60.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np

__all__ = ["AUTHORS_COMMIT", "AUTHORS_REPO", "IMAGE_LISTS", "MASK_GUIDED_README_IMAGES", "MaskGuidedImage",
           "pixel_digest"]

AUTHORS_REPO = "13204942/Diffusion-based_DA_Fetal_Ultrasound_Segmentation"
AUTHORS_COMMIT = "200ae09930581435d9febc67d160ce344c5b169c"


class MaskGuidedImage(NamedTuple):
    authors_name: str  # code/FT_SD/data/<trimester>/image/<authors_name>.png
    trimester: int  # 1, 2 or 3: the authors' folder
    hc18_name: str  # the HC18 image (training_set/<hc18_name>.png), the hc18 dataset's row id
    image_sha256: str  # pixel_digest of the authors' image
    outline_sha256: str  # pixel_digest of the authors' outline (= HC18's <hc18_name>_Annotation.png)


def pixel_digest(array: np.ndarray) -> str:
    """sha256 of an 8-bit gray image's shape and pixels (PNG encodings differ; pixels do not)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return hashlib.sha256(f"{array.shape[0]}x{array.shape[1]}:".encode() + array.tobytes()).hexdigest()


#: The authors' README recipe, ordered by trimester and their number.
MASK_GUIDED_README_IMAGES: tuple[MaskGuidedImage, ...] = (
    MaskGuidedImage("1_HC", 1, "000_HC",
                    "5b0aae9f20eb74fa289ae0f8582171d6ee55f5a36d781ec8e922e12658b4ef4a",
                    "e489ec90e62ac535225fbe9b35275b9da7deb071752392dad3a6bc2316b1f19b"),
    MaskGuidedImage("2_HC", 1, "001_HC",
                    "85bcacf239e9f210cfcbad3d0222fe29d1f61f4d271113590030ea176d5d582e",
                    "05282bd3668687f98900c49d32956a370e37b1f31fe7d88d35d42e22728b5ae4"),
    MaskGuidedImage("5_HC", 1, "004_HC",
                    "93d089eb2586dd4f4bb950a3fc64a81d0ad23800faa66e501434593196897745",
                    "150b0896d60d5f9dff72bf65001c020abf4b584f8443fdc198c422d829737f35"),
    MaskGuidedImage("6_HC", 1, "005_HC",
                    "3633f107a19271f28a7328fa7ad6056d06de094554ddd2e4d9f73d7776a68595",
                    "dad1f368253acd0eca444a933ff8e28ed8f30d1cfdfaa1a757d27d878c987abd"),
    MaskGuidedImage("9_HC", 1, "008_HC",
                    "830a1318391442d39797f7c744fb86071c700a827a39cda9a9290da35e9260d5",
                    "cb3f9b6df82403243a43a8d18920f99319058dee051089c47769ca3fdcde4879"),
    MaskGuidedImage("14_HC", 1, "012_HC",
                    "746d3a87f89570f3a08458778242ebdf3987cc42c37aa8ae58dae1488fa01d85",
                    "8dfe7df58ab556bb6539ccff1377818f5c08791e3cac632f515c9209ca83f9e4"),
    MaskGuidedImage("15_HC", 1, "013_HC",
                    "fdfdbb4774f108c22d3a8d48753f9c2dcd2e6d4e9d1c6c625cd46c3e91c8c01d",
                    "7e111533ec2095e9f708e456e5c9a5e4ba5c4f110c365069164d46e60fd49577"),
    MaskGuidedImage("18_HC", 1, "014_3HC",
                    "7e688bc1b40fe9314287075728e12ba9395a623cfcccc9923a5b447a2463748e",
                    "ae573478886a36f25c7240319939ee759f043440db16e9478e09dfb23df67659"),
    MaskGuidedImage("27_HC", 1, "021_HC",
                    "e156358942fe6618d4b87331c5f756d14ad5499c03120bf2dbcc4e66f8783248",
                    "abdb6cfc4f3fd54197266dbf05ac10bbe4a5847962a7c3dce15368920899f167"),
    MaskGuidedImage("35_HC", 1, "026_2HC",
                    "870aec20ea3412267e98cf2762668c3285ed41c4104120e64cf13a56abc9e8af",
                    "dccfb230ac9f9d2abaaed39089d8a343a5ae41f9adefd888c8e194bcce2e0d02"),
    MaskGuidedImage("36_HC", 1, "027_HC",
                    "7132bccc35bdd2f3385334c37b35dc7ba66838f416b336b018a517c3d2a88959",
                    "7235e6c36df46ad7f3ff4c9ed0a86d00c2044fa6a8c7a93de8f8534e9412fec9"),
    MaskGuidedImage("37_HC", 1, "028_HC",
                    "ee5658b15475579c8c910b48ff94319979175fb0f472f565f90999d6ef3bf462",
                    "69ca3bf6a39d43c9f5169c6f3d6dd3521f8d58668a5a3519daa18d7437bda071"),
    MaskGuidedImage("38_HC", 1, "029_HC",
                    "a9592c3b55cdcc4ae658735774c3f06babdc1eab28a2958389e5a6e80fc755bb",
                    "6f4bafab124096369b1ff46cce2d0f916af902c42de4833ed611c46445a4f1c0"),
    MaskGuidedImage("45_HC", 1, "034_HC",
                    "83e419c460bd67c322af9ecb0e0d34be4968678d13327c2b5025ecbed6d0225c",
                    "70294a8473a3180dc40a595e3b389ddd24436f29db7d2f2c5b0318e8a84256dc"),
    MaskGuidedImage("46_HC", 1, "035_HC",
                    "172620d9f677a1b6c2ddd7b6f7b9db99f7ee873beb10ea2e5f5208fa17cf34c7",
                    "781f94b6a229baa285cea10e492fcc9345a1b2cc49a7d91632123fb4fb4e8c89"),
    MaskGuidedImage("51_HC", 1, "040_HC",
                    "b05d8c28fa30efeff9b0d4b62ea8a6e7209932d00371e3f046359ba34637eb3c",
                    "0030ef2c4f0d08340fbcebd8dc547b9a98cb62ce5a9dd5675b5c8133f4047cda"),
    MaskGuidedImage("64_HC", 1, "052_HC",
                    "68ef58fd7adb783aac3bbd670d9dba0a03efedd9bc63cca255e6dc0c2d2670fe",
                    "b999fc54621ec25bc021895fe271d92935fd5aab1286e753254f6182d35cb341"),
    MaskGuidedImage("68_HC", 1, "056_HC",
                    "788a2f7ec18e5f7372595be60a48bc61bed3e1ff5bd26fa83194e7a587105161",
                    "018de5bf35406f2e6d6967352a3337045320d03f2647b6d7cad6a57568dace91"),
    MaskGuidedImage("89_HC", 1, "071_HC",
                    "885572fa29630e5422193970401ec0cca88cfc80153e515ededa8f7e78002af2",
                    "d37cd070633f38e806d9fbce5db094b3e0f4744a709b3ed95b348e01a4a357e0"),
    MaskGuidedImage("110_HC", 1, "089_HC",
                    "e7b7597048512b660c17ea398348174142e6e032995315b0b57de26a19b04f90",
                    "9ca8208162f5640871f1efd14a872dcce07ab4987366135564e1e90ef829b5c9"),
    MaskGuidedImage("314_HC", 2, "247_HC",
                    "14eb46ecbe3db03c1f65f73fd72b93380524521fe8e770c8601e12ab4f26cbc0",
                    "f772e049db2213783582cf582bd51e002951ec7c1890e0c4f7996a151f492855"),
    MaskGuidedImage("372_2HC", 2, "299_HC",
                    "ceb7e4a8eda54b1d140d0dba0634bc70cb5e1f9616ed413b03115e856d992890",
                    "4a3a3b94b3b142328fd225ba9dcf88037d73063baa3817c6bedf70996597be44"),
    MaskGuidedImage("415_HC", 2, "336_HC",
                    "9ec7e0a42a02a3f6c2b7131092c44fade7d2de10794aa9809a7137dec64ccd2b",
                    "469653bdd668a8f541e2b540e1a963b301626fe3efe714c325e1a88ad5e3ee89"),
    MaskGuidedImage("458_HC", 2, "372_HC",
                    "5e7ac6b199881f32792d16294998cafe972fb08e19b05a7f89e5cf0942fa33d4",
                    "efe7710cf98d5ac8c2696b004307dc952faca1f3778179c896619d11e6f557f7"),
    MaskGuidedImage("482_2HC", 2, "392_2HC",
                    "ac5fa132e0e568254a5eef886c08eb2b46dc47043c23b1a4018d86e2ffcbc064",
                    "4b6d2c18b8a130b5c024b26869916b6d69d512112472b9280bfa104af1579e2e"),
    MaskGuidedImage("505_HC", 2, "409_HC",
                    "2f33de10e8ec81fc8e644e674305a126746f4b4d3bb9abaf237f656970353bdb",
                    "fbbb2783149e2dbf5458a2615b32500aabe9c4562f6cdd392a86ed9a014da900"),
    MaskGuidedImage("534_HC", 2, "432_HC",
                    "b05de88fc26d92fd14ecfd90e3bb379a170f51d68090e67952aa3dde9fb1c412",
                    "15d98e3298201830648012653cba095b24b6f0dda1893e7b940933a8f94a70c0"),
    MaskGuidedImage("609_HC", 2, "491_HC",
                    "6674bab2816f282a98111677df9334f648376095ea4aef63b754a8a9fc1aa5be",
                    "d53d38fce480ae09d50520aa10ecf1f117e07c9c27acc48d96b3cad03f12e053"),
    MaskGuidedImage("637_HC", 2, "514_HC",
                    "a8782aaec51431828896f23c17d1b3393f54e2128cd39384ccea46e04cb1a345",
                    "e540206de66f5ef8f56e2cc18f7f1f5b9572f8a1f075b94c84420cb3d6e87c5c"),
    MaskGuidedImage("654_HC", 2, "530_HC",
                    "5223431efcea3dc04b913c0483765372070be36176216a090fc1ed488803731e",
                    "62296938590b02322c6bd043ae83948dc955f6aee311bbc212955d610496c142"),
    MaskGuidedImage("678_HC", 2, "548_HC",
                    "8c5ae01cbec082b6b262e5d69baa4423230f9b1c0559814eb569b6a121f592a1",
                    "b26ac74fcde61aaca8bd4c0aafb740dc6f3adbc947ac9b568e21d504bf1266c5"),
    MaskGuidedImage("683_HC", 2, "553_HC",
                    "936dcd63ab67dd3b4357a39e6b7515dcf2fd6bb342c92993cbc422a1bd1335ea",
                    "4831400b36d3d147e1ecaf3186c9ff561204375aab68d347a28b1c836e802061"),
    MaskGuidedImage("713_HC", 2, "575_HC",
                    "69c6a6d17f3b0f500530f337c3e1074093ce29b99788d4c5a5098bf31d502c07",
                    "3d3a5aced1dbfd6483797ae66b1626437a91d1267f728e8c0bfc5bcaaf9c9c15"),
    MaskGuidedImage("716_HC", 2, "578_HC",
                    "4157fb1cff89b65c6627e8e43c0d9c7a3ec8fd8faa574b6dbc85170bb85b6d0b",
                    "f72584ed9b2c2640982abbf8e30707e475552ce35fad62d6a62c11345031c141"),
    MaskGuidedImage("720_HC", 2, "582_HC",
                    "68c92202d9e43b28fac10d699843836280c7725602d7c3a2adb8f01f9a028b22",
                    "9a333147d4e088c792918c10fd049064fce2b64dff75e6fd3a9296da6f8f545c"),
    MaskGuidedImage("732_HC", 2, "591_HC",
                    "54c45ee1ab58f56ee7d8075ff24e63a8c80cbce59f386cc2ef8226c054274812",
                    "fac83660fbc026a5a926a8b1057e41cb213a1b45465fbdf1922bf4fed0d3d3be"),
    MaskGuidedImage("742_HC", 2, "600_HC",
                    "0b04969241f0dd6be91146858824702e7bf6821489144d35f68dd928e25eff12",
                    "e74b52594d80afa6f6ae027db0f9df4ea9efe70c3d85b11c375bb2d4905ef707"),
    MaskGuidedImage("750_HC", 2, "608_HC",
                    "c59fd21dfcbc23cd756660b040e29b530962ebe4e2c3e6273c486384067de5f4",
                    "df0cda6b364284d6c78218f29d072d4389551aca9623e77f57f89fdf60368bd5"),
    MaskGuidedImage("770_HC", 2, "623_HC",
                    "c4c2e054efa90982b065420c638dfa9f58f7be211b33ce4c0b9a18ffa1a79287",
                    "647514d118f4bbb99c0a1003a8892a5d3348b7556deee68939fe7d64d5271f79"),
    MaskGuidedImage("772_HC", 2, "625_HC",
                    "f4bba83d6659f872bcf531aa4c3dafea879b92b8a7504294df13d845223ef4ce",
                    "d70170a419415b18ef2f8d5c9128c05b8d7ba341e468b6c800702d638d11c728"),
    MaskGuidedImage("893_HC", 3, "723_HC",
                    "712cbd45e3a366e845d13a2c931a23449fcdf89baa8a9ed860f1a38fda2423b9",
                    "8b0f1e514d3dc3425f7acad1c07e43786c614289037172fbfba7dba367756626"),
    MaskGuidedImage("896_HC", 3, "725_2HC",
                    "4e14de0a2fb6a6415fc755adf878ff46edeaf588df159d0fe4e6b5afa5393296",
                    "4035c68b8111e53a64f336063c0e1c1316c5db32ea4c9e71fead408845b7b5ad"),
    MaskGuidedImage("899_HC", 3, "728_HC",
                    "01ff1be81b6e893250e157e22ccedf978721e30658cd1fa37a8a81ed5f1bb08d",
                    "42cc81ecfc24f356b7f6e698c086cabff1de3f3d5ac5fe2c4c7218d17ec3b7d5"),
    MaskGuidedImage("908_HC", 3, "734_HC",
                    "458c54586647dbe721fa90ec8d2dcb790e35268b012d1df7ff986ffe897b1202",
                    "01ee1417d98d3d3f1ad695b175baa05aa4dce56bb4791a66bd09642916d8e613"),
    MaskGuidedImage("909_HC", 3, "735_HC",
                    "55892463629e2d3dfe52ac362dbfb42a7bcaeecfc6fd42519d0bb0312b2bdfb7",
                    "54533c7bb43cf3bc9909f113dea7610e8d9901733d6be93aacb75041e28eadfb"),
    MaskGuidedImage("914_2HC", 3, "739_HC",
                    "57e5e2e101c1b53c5a54464cd486f8bd568106e9f735e8b953cbc36d2f5c6d82",
                    "b1d6560f14b4f44fd55d3462ea58e304d2f2b91f823c0be14e500a272c967894"),
    MaskGuidedImage("929_2HC", 3, "751_HC",
                    "bda519d07e3a122f20821cc778e4787766ef1beb7041bd191d5397e71ceb279f",
                    "c7f74f727abcf42e519133a8327fc08c810ad73973f98640c0b4ffe54b643b1d"),
    MaskGuidedImage("931_HC", 3, "752_HC",
                    "ab18af5e17245c2512b9e3f4691af2c2bdcdf2cac75d6a24faab257104f41574",
                    "3f0429bc5c9ca985faa201efb022250a716ce572751d06ae6a31490ca87b877f"),
    MaskGuidedImage("941_HC", 3, "761_HC",
                    "6df15a7d357c75c8310886632293754fcb9af3623861fe8e09acc32c6d47b37e",
                    "63757fc101b20874b96c595def809bc039a8568583791ecc747740021f7f15d1"),
    MaskGuidedImage("947_HC", 3, "766_HC",
                    "7128fca2dfc325d090b04c75d7f6504a0f1b13006ed3f259c11bb985b7341c33",
                    "cb65e794125b9f54f24387d4a2a4eb3baf65efbbb5c1f7283a3dbcebc8c07219"),
    MaskGuidedImage("948_HC", 3, "767_HC",
                    "b4fb0bcd4436e6d2cdacd0e628ee9a39488de08ba513cd553a825aa7a6e34002",
                    "3753a9391d6c20516c58ac15359f55ec6e73a1b9036cb673d9193634fbddf9aa"),
    MaskGuidedImage("953_HC", 3, "771_HC",
                    "c400a0276a2aa219db80e2441f33b99e2257052e8560c4d550ab17e4201bcaae",
                    "c0a1daafc66d5a1c8b11bf5fd6b2a0f1cd9e7e3b75471c6a0d70c54ec6dee783"),
    MaskGuidedImage("955_2HC", 3, "773_HC",
                    "180db7ee96afbbe54914ccaa75e94db9040588595936f56e237619e86900c1e6",
                    "c550c1f5448e72320351ae37b43d405462a7b34e388cc895c88b7a294e3a0ba8"),
    MaskGuidedImage("956_3HC", 3, "773_2HC",
                    "cbff3c30777234879fb5b4add243188ec7b7700edfe10f4199a847adbe82a986",
                    "a378418d15d3421e2059c87037a9cc6f41faf809b06f7e14c822989b4a60abad"),
    MaskGuidedImage("957_HC", 3, "773_3HC",
                    "dcf3132ce8a31c96fa5e9b0622ae4ca2b76080b1e6cb3aeb6a54edfd95210b1e",
                    "26372d3c5af9d448fca4718e02b5116fb5446d03714ea3d584d475c47540f056"),
    MaskGuidedImage("962_HC", 3, "778_HC",
                    "c8eb7396115ac76a2714af840b8b23ea63b13b8537b8e9328ee17bef65ec3a2f",
                    "97e96a126fe53baa843e0a0c50542efef59babad4abeed29123cc2beb861e1cd"),
    MaskGuidedImage("977_HC", 3, "787_HC",
                    "85a9bf56ee23df1cf5b5cf780be50cca5271ff322d2a83f6aac03365a85a95f4",
                    "1ff532f8f98cc5100fa8490d62cf7231ca84944dab5d004c42105bd6f87c929e"),
    MaskGuidedImage("989_2HC", 3, "796_HC",
                    "41a6346a4c89a9293e1e0dd75e175f156fca2471c2252c287cb37b04c3b9db4b",
                    "5c738fd374fbf18dc36596c5a59663aa62a60dd0f2e2eb38629ad7636f74cf2d"),
    MaskGuidedImage("990_HC", 3, "796_2HC",
                    "20b505e8c6b20379e1168d6ed57f2a20e448fc7ce00a7eaec4b182acdf9764f0",
                    "192af71e66538c3407f3bb9b05df89be3632b72b058157df39f45c29e9d3505c"),
    MaskGuidedImage("997_HC", 3, "803_HC",
                    "7da44de00aae47abb893e3a12e1c889636b706fd3200ad1b03df76fcac691ff0",
                    "642f4e512a6b091d7f35a9a103e8a0b0fbc52af57f9889ff8cb8b9f59b2c3a5f"),
)

#: Named lists of the mask-guided generator's training images (``data.image_list``).
IMAGE_LISTS: dict[str, tuple[MaskGuidedImage, ...]] = {"readme-hc18-60": MASK_GUIDED_README_IMAGES}
